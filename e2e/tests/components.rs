//! The components in their own processes: `tug apiserver`, `tug scheduler`, `tug controllers`
//! and `tug agent`, as a cluster over several machines runs them; what the one-component
//! commands say when something is missing; and a node that dies: its pods come back on the
//! other node, as kubectl shows.

// Helpers outside `#[test]` fns panic on failure too: this is a test crate.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use tugboat_e2e::components::{ApiServer, Component, NetNs, holder_pid};
use tugboat_e2e::containers::{RESET_TIMEOUT, containers_or_skip, wait_for};
use tugboat_e2e::{Cluster, Kubectl, STARTUP_TIMEOUT, kubectl_or_skip, tug_binary};

/// The shortened node timeouts: heartbeat grace and the default unreachable toleration. The
/// grace period stays above twice the agents' 10 s lease renewal, or healthy nodes flap.
const NODE_TIMEOUTS: [&str; 2] = [
    "--node-monitor-grace-period=25s",
    "--pod-eviction-timeout=5s",
];

/// Two replicas that prefer different nodes; `sleep` runs on real containers as in the sim.
const SPREAD: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: spread
spec:
  replicas: 2
  selector:
    matchLabels:
      app: spread
  template:
    metadata:
      labels:
        app: spread
    spec:
      terminationGracePeriodSeconds: 1
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            podAffinityTerm:
              topologyKey: kubernetes.io/hostname
              labelSelector:
                matchLabels:
                  app: spread
      containers:
      - name: main
        image: busybox
        imagePullPolicy: IfNotPresent
        command: [\"sleep\", \"3600\"]
";

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `tug args...` to completion, without any kubeconfig from the environment.
fn tug(home: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(tug_binary().unwrap());
    command
        .args(args)
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        .env_remove("TUG_LOG");
    tugboat_e2e::process::run_bounded(&mut command, None, Duration::from_secs(60)).unwrap()
}

/// Whether node `name`'s Ready condition is `status`.
fn node_ready_is(kubectl: &Kubectl, name: &str, status: &str) -> bool {
    kubectl.get_jsonpath(
        &["node", name],
        "{.status.conditions[?(@.type==\"Ready\")].status}",
    ) == status
}

/// The deployment's pods: (node, ready, terminating, name) each.
fn spread_pods(kubectl: &Kubectl) -> Vec<(String, bool, bool, String)> {
    let Ok(list) = kubectl.get_json(&["pods", "-l", "app=spread"]) else {
        return Vec::new();
    };
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|pod| {
            let node = pod["spec"]["nodeName"].as_str().unwrap_or("").to_owned();
            let ready = pod["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            let terminating = !pod["metadata"]["deletionTimestamp"].is_null();
            let name = pod["metadata"]["name"].as_str().unwrap_or("").to_owned();
            (node, ready, terminating, name)
        })
        .collect()
}

/// Ready pods of the deployment that are not going away, per node.
fn ready_on(pods: &[(String, bool, bool, String)], node: &str) -> Vec<String> {
    pods.iter()
        .filter(|(n, ready, terminating, _)| n == node && *ready && !*terminating)
        .map(|(_, _, _, name)| name.clone())
        .collect()
}

/// The fault journey on nodes `survivor` and `victim`: the deployment spreads over both,
/// `kill` stops the victim's agent for good, the victim goes NotReady with the unreachable
/// taint, and its pod is replaced on the survivor. `timeout` bounds each wait.
fn node_dies_and_its_pods_move(
    kubectl: &Kubectl,
    survivor: &str,
    victim: &str,
    timeout: Duration,
    kill: impl FnOnce(),
) {
    for node in [survivor, victim] {
        wait_for(&format!("node {node} Ready"), timeout, || {
            node_ready_is(kubectl, node, "True")
        });
    }
    kubectl.ok(&["create", "namespace", "spread"]).unwrap();
    let kubectl = kubectl.namespace("spread");
    kubectl.apply(SPREAD).unwrap();
    wait_for("one ready pod on each node", timeout, || {
        let pods = spread_pods(&kubectl);
        ready_on(&pods, survivor).len() == 1 && ready_on(&pods, victim).len() == 1
    });
    let survivors_pod = ready_on(&spread_pods(&kubectl), survivor).remove(0);
    let wide = kubectl.ok(&["get", "pods", "-o", "wide"]).unwrap();
    assert!(
        wide.contains(survivor) && wide.contains(victim),
        "pods on both nodes:\n{wide}"
    );

    kill();

    wait_for(&format!("node {victim} NotReady"), timeout, || {
        node_ready_is(&kubectl, victim, "Unknown")
    });
    let nodes = kubectl.ok(&["get", "nodes"]).unwrap();
    let victim_line = nodes
        .lines()
        .find(|line| line.starts_with(victim))
        .unwrap_or_default();
    assert!(victim_line.contains(" NotReady "), "{nodes}");
    wait_for("the unreachable taint", timeout, || {
        kubectl
            .get_jsonpath(&["node", victim], "{.spec.taints[*].key}")
            .contains("node.kubernetes.io/unreachable")
    });
    wait_for("both replicas ready on the survivor", timeout, || {
        ready_on(&spread_pods(&kubectl), survivor).len() == 2
    });
    // Only the dead node's pod moved: the healthy node never looked dead.
    assert!(
        ready_on(&spread_pods(&kubectl), survivor).contains(&survivors_pod),
        "{survivors_pod} was replaced too"
    );
    let wide = kubectl.ok(&["get", "pods", "-o", "wide"]).unwrap();
    let running_on_survivor = wide
        .lines()
        .filter(|line| line.contains(" Running ") && line.contains(survivor))
        .count();
    assert_eq!(running_on_survivor, 2, "{wide}");
    // The victim's pod was evicted: gone, or Terminating until its node comes back.
    for line in wide.lines().filter(|line| line.contains(victim)) {
        assert!(line.contains("Terminating"), "{wide}");
    }
    let ready = kubectl.get_jsonpath(&["deployment", "spread"], "{.status.readyReplicas}");
    assert_eq!(ready, "2");
}

/// A scratch dir with one log per component.
fn log(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.log"))
}

#[test]
fn components_in_their_own_processes_run_a_cluster_and_replace_a_dead_node() {
    if kubectl_or_skip().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let api_dir = dir.path().join("api");
    let port = tugboat_testkit::net::free_port().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let mut apiserver = Component::start(
        None,
        &[
            "apiserver",
            "--data-dir",
            api_dir.to_str().unwrap(),
            "--listen",
            &listen,
            NODE_TIMEOUTS[1],
        ],
        &log(dir.path(), "apiserver"),
    )
    .unwrap();
    let kubeconfig = api_dir.join("kubeconfig");
    let kubectl = Kubectl::new(kubeconfig.clone(), dir.path().join("kubectl-cache")).unwrap();
    wait_for("the API server", STARTUP_TIMEOUT, || {
        assert!(!apiserver.exited(), "{}", apiserver.log());
        kubeconfig.is_file()
            && kubectl
                .run(&["get", "--raw", "/readyz"])
                .is_ok_and(|o| o.status.success())
    });
    let kubeconfig_flag = ["--kubeconfig", kubeconfig.to_str().unwrap()];
    let mut scheduler = Component::start(
        None,
        &[&["scheduler"][..], &kubeconfig_flag].concat(),
        &log(dir.path(), "scheduler"),
    )
    .unwrap();
    let mut controllers = Component::start(
        None,
        &[&["controllers", NODE_TIMEOUTS[0]][..], &kubeconfig_flag].concat(),
        &log(dir.path(), "controllers"),
    )
    .unwrap();
    // The agents join with the token (no kubeconfig, no copy of the CA).
    let token_file = api_dir.join("join-token");
    let server = format!("https://{listen}");
    let agent = |name: &str| {
        let data = dir.path().join(name);
        Component::start(
            None,
            &[
                "agent",
                "--runtime=sim",
                "--node-name",
                name,
                "--data-dir",
                data.to_str().unwrap(),
                "--server",
                &server,
                "--token-file",
                token_file.to_str().unwrap(),
                "--kubelet-port=0",
                "--node-ip=127.0.0.1",
            ],
            &log(dir.path(), name),
        )
        .unwrap()
    };
    let mut first = agent("first");
    let mut second = agent("second");

    node_dies_and_its_pods_move(&kubectl, "first", "second", Duration::from_secs(60), || {
        second.kill()
    });
    // The agent's endpoint serves through the API server (its certificate is trusted).
    let pod = kubectl.namespace("spread").get_jsonpath(
        &["pods", "-l", "app=spread"],
        "{.items[?(@.spec.nodeName==\"first\")].metadata.name}",
    );
    let pod = pod.split_whitespace().next().unwrap_or_default();
    let logs = kubectl.namespace("spread").run(&["logs", pod]).unwrap();
    assert!(logs.status.success(), "{}", stderr(&logs));

    // Each stops cleanly on SIGTERM.
    for (name, component) in [
        ("agent", &mut first),
        ("controllers", &mut controllers),
        ("scheduler", &mut scheduler),
        ("apiserver", &mut apiserver),
    ] {
        let log = component.log();
        assert!(
            component.stop().unwrap(),
            "{name} did not stop cleanly:\n{log}"
        );
    }
}

#[test]
fn component_commands_name_what_is_missing() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = tugboat_testkit::net::free_port().unwrap();
    // A kubeconfig whose server is not there.
    let dead = dir.path().join("dead-kubeconfig");
    std::fs::write(
        &dead,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n"
        ),
    )
    .unwrap();
    let dead = dead.to_str().unwrap();
    for command in [
        &["scheduler"][..],
        &["controllers"],
        &["agent", "--runtime=sim", "--pki-dir", "/"],
    ] {
        let output = tug(home.path(), &[command, &["--kubeconfig", dead]].concat());
        assert_eq!(
            output.status.code(),
            Some(2),
            "{command:?}: {}",
            stderr(&output)
        );
        let agent_without_ca = command[0] == "agent";
        let expected = if agent_without_ca {
            "no cluster CA in /".to_owned()
        } else {
            format!("tug: no cluster at https://127.0.0.1:{port}: start one with tug up")
        };
        // One line naming the problem and the fix.
        assert_eq!(
            stderr(&output).lines().count(),
            1,
            "{command:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(&expected),
            "{command:?}: {}",
            stderr(&output)
        );
    }
    // A kubeconfig that is not one.
    let bad = dir.path().join("bad-kubeconfig");
    std::fs::write(&bad, "this: [is not").unwrap();
    let output = tug(
        home.path(),
        &["controllers", "--kubeconfig", bad.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains(&format!(
            "tug: cannot read the kubeconfig {}",
            bad.display()
        )),
        "{}",
        stderr(&output)
    );
    let missing = dir.path().join("missing");
    let output = tug(
        home.path(),
        &["scheduler", "--kubeconfig", missing.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("does not exist: check --kubeconfig"),
        "{}",
        stderr(&output)
    );
    // Bad flags are usage errors.
    for args in [
        &["controllers", "--node-monitor-grace-period", "5x"][..],
        &["agent", "--pod-cidr", "10.89.0.0"],
        &["agent", "--node-ip", "not-an-ip"],
        &["agent", "--runtime", "docker"],
        &["scheduler", "--hpa-sync-period", "1s"],
        &["apiserver", "--runtime", "sim"],
    ] {
        let output = tug(home.path(), args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains("error:"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

/// `apiserver_request_total` of `verb` on `resource` (any code), from the API server's metrics.
fn requests(kubectl: &Kubectl, verb: &str, resource: &str) -> u64 {
    let metrics = kubectl.ok(&["get", "--raw", "/metrics"]).unwrap();
    let series = format!("apiserver_request_total{{verb=\"{verb}\",resource=\"{resource}\",");
    metrics
        .lines()
        .filter(|line| line.starts_with(&series))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A pod bound to `node` directly (no scheduler involved).
fn pod_on(node: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: on-{node}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: [\"sleep\", \"3600\"]
"
    )
}

#[test]
fn a_node_joins_with_a_token_that_pins_the_ca_and_gets_its_own_credentials() {
    if kubectl_or_skip().is_none() {
        return;
    }
    let cluster = Cluster::start().unwrap();
    let kubectl = cluster.kubectl().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token_file = cluster.data_dir().join("join-token");
    assert_eq!(mode(&token_file), 0o600);
    let token = std::fs::read_to_string(&token_file).unwrap();
    let (pinned, secret) = token.trim().split_once("::node:").unwrap();
    assert!(pinned.starts_with("K10") && pinned.len() == 67, "{token}");
    let url = cluster.url();
    let data = dir.path().join("joined");
    let data_flag = data.to_str().unwrap();
    let node = [
        "agent",
        "--runtime=sim",
        "--node-name=joined",
        "--data-dir",
        data_flag,
        "--kubelet-port=0",
    ];
    let join_with = |token: &str| {
        tug(
            dir.path(),
            &[
                &node[..],
                &["--node-ip=127.0.0.1", "--server", &url, "--token", token],
            ]
            .concat(),
        )
    };
    let one_line = |output: &Output| {
        let text = stderr(output);
        assert_eq!(output.status.code(), Some(2), "{text}");
        assert_eq!(text.lines().count(), 1, "{text}");
        text
    };

    // Another CA than the token pins: refused before the secret goes anywhere.
    let other_ca = format!("K10{}::node:{secret}", "0".repeat(64));
    let refused = one_line(&join_with(&other_ca));
    assert!(
        refused.contains("does not serve the cluster CA of this join token")
            && refused.contains("refusing to send the secret"),
        "{refused}"
    );
    assert!(requests(&kubectl, "get", "cacerts") >= 1);
    assert_eq!(requests(&kubectl, "post", "v1-tugboat/join"), 0);
    assert!(!data.exists(), "a refused join left {}", data.display());

    // The right CA, a wrong secret: the server says so.
    let refused = one_line(&join_with(&format!("{pinned}::node:not-the-secret")));
    assert!(
        refused.contains("(401)") && refused.contains("secret is not this cluster's"),
        "{refused}"
    );
    let refused = one_line(&join_with("just-a-secret"));
    assert!(refused.contains("K10<CA hash>::node:<secret>"), "{refused}");
    assert!(!data.exists());

    // The token: the node joins, goes Ready, and has its own credential.
    let token_flag = [
        "--server",
        &url,
        "--token-file",
        token_file.to_str().unwrap(),
    ];
    let start = |extra: &[&str], name: &str| {
        Component::start(None, &[&node[..], extra].concat(), &dir.path().join(name)).unwrap()
    };
    let mut agent = start(&token_flag, "agent.log");
    wait_for("the joined node to be Ready", STARTUP_TIMEOUT, || {
        assert!(!agent.exited(), "tug agent exited:\n{}", agent.log());
        node_ready_is(&kubectl, "joined", "True")
    });
    let node_kubeconfig = data.join("node/kubeconfig");
    assert_eq!(mode(&node_kubeconfig), 0o600);
    let as_node = Kubectl::new(node_kubeconfig.clone(), dir.path().join("cache")).unwrap();
    assert_eq!(
        as_node
            .ok(&["config", "view", "-o", "jsonpath={.users[*].name}"])
            .unwrap()
            .trim(),
        "system:node:joined"
    );
    let node_token = as_node
        .ok(&[
            "config",
            "view",
            "--raw",
            "-o",
            "jsonpath={.users[0].user.token}",
        ])
        .unwrap();
    let static_tokens = std::fs::read_to_string(cluster.data_dir().join("tokens.csv")).unwrap();
    assert!(!node_token.trim().is_empty());
    assert!(
        !static_tokens.contains(node_token.trim()),
        "the node got a static (admin) token"
    );
    // The credential works, here and on the API server's side.
    assert!(as_node.ok(&["get", "node", "joined"]).is_ok());
    // The endpoint's certificate (issued at join) is trusted by the API server.
    kubectl.apply(&pod_on("joined")).unwrap();
    wait_for("the pod on the joined node to run", STARTUP_TIMEOUT, || {
        kubectl.get_jsonpath(&["pod", "on-joined"], "{.status.phase}") == "Running"
    });
    let logs = kubectl.run(&["logs", "on-joined"]).unwrap();
    assert!(logs.status.success(), "{}", stderr(&logs));
    let log = agent.log();
    assert!(
        agent.stop().unwrap(),
        "the agent did not stop cleanly:\n{log}"
    );

    // A restart needs no token: the node comes back with the credential it keeps; on another
    // address, its serving certificate is renewed with that credential.
    kubectl
        .ok(&["delete", "node", "joined", "--wait=false"])
        .unwrap();
    wait_for("the node object to go", STARTUP_TIMEOUT, || {
        kubectl
            .run(&["get", "node", "joined"])
            .is_ok_and(|o| !o.status.success())
    });
    let mut agent = start(&["--node-ip=127.0.0.2"], "agent-again.log");
    wait_for("the node to come back", STARTUP_TIMEOUT, || {
        assert!(!agent.exited(), "tug agent exited:\n{}", agent.log());
        node_ready_is(&kubectl, "joined", "True")
    });
    assert!(!agent.log().contains("joined https"), "{}", agent.log());
    kubectl
        .apply(&pod_on("joined").replace("on-joined", "again"))
        .unwrap();
    wait_for("a pod on the moved node to run", STARTUP_TIMEOUT, || {
        kubectl.get_jsonpath(&["pod", "again"], "{.status.phase}") == "Running"
    });
    let logs = kubectl.run(&["logs", "again"]).unwrap();
    assert!(logs.status.success(), "{}", stderr(&logs));
    assert_eq!(
        as_node
            .ok(&[
                "config",
                "view",
                "--raw",
                "-o",
                "jsonpath={.users[0].user.token}"
            ])
            .unwrap(),
        node_token
    );
    assert_eq!(
        requests(&kubectl, "post", "v1-tugboat/join"),
        3,
        "one refused, one join, one renewal"
    );
    let log = agent.log();
    assert!(
        agent.stop().unwrap(),
        "the agent did not stop cleanly:\n{log}"
    );
}

#[test]
fn a_joined_node_name_needs_its_node_password_until_the_node_is_deleted() {
    if kubectl_or_skip().is_none() {
        return;
    }
    let cluster = Cluster::start().unwrap();
    let kubectl = cluster.kubectl().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = cluster.url();
    let token_file = cluster.data_dir().join("join-token");
    let secret = "taken.node-password.tugboat";
    let own_node = kubectl
        .ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"])
        .unwrap();
    let agent_args = |data: &Path, name: &str| -> Vec<String> {
        [
            "agent",
            "--runtime=sim",
            "--kubelet-port=0",
            "--node-ip=127.0.0.1",
            "--server",
            &url,
            "--token-file",
            token_file.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--node-name",
            name,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let start = |data: &Path, log: &str| {
        let args = agent_args(data, "taken");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut agent = Component::start(None, &args, &dir.path().join(log)).unwrap();
        // Its own join, not the Node an earlier agent left Ready.
        wait_for("the node to join and be Ready", STARTUP_TIMEOUT, || {
            assert!(!agent.exited(), "tug agent exited:\n{}", agent.log());
            agent.log().contains("joined https") && node_ready_is(&kubectl, "taken", "True")
        });
        agent
    };
    // A join that must be refused: one line, exit 2, the server's 403.
    let refused = |data: &Path, name: &str| {
        let args = agent_args(data, name);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = tug(dir.path(), &args);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{text}");
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains("(403)") && text.contains("node password rejected"),
            "{text}"
        );
        text
    };
    let node_token = |data: &Path| {
        let kubeconfig = std::fs::read_to_string(data.join("node/kubeconfig")).unwrap();
        let doc: serde_json::Value = serde_yaml::from_str(&kubeconfig).unwrap();
        doc["users"][0]["user"]["token"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // The first machine to join as `taken` makes its password; the server keeps a hash of it
    // in a Secret tied to the Node.
    let first = dir.path().join("first");
    let mut agent = start(&first, "first.log");
    let password_file = first.join("node-password");
    assert_eq!(mode(&password_file), 0o600);
    let password = std::fs::read_to_string(&password_file).unwrap();
    assert!(password.trim().len() >= 32, "{password:?}");
    let node_uid = kubectl.get_jsonpath(&["node", "taken"], "{.metadata.uid}");
    wait_for(
        "the password Secret to be owned by the Node",
        STARTUP_TIMEOUT,
        || {
            kubectl.get_jsonpath(
                &["-n", "kube-system", "secret", secret],
                "{.metadata.ownerReferences[?(@.kind==\"Node\")].uid}",
            ) == node_uid
        },
    );
    assert_eq!(
        kubectl.get_jsonpath(&["-n", "kube-system", "secret", secret], "{.type}"),
        "tugboat.dev/node-password"
    );
    let hash = kubectl
        .ok(&[
            "-n",
            "kube-system",
            "get",
            "secret",
            secret,
            "-o",
            "go-template={{.data.hash | base64decode}}",
        ])
        .unwrap();
    assert!(hash.starts_with("$pbkdf2-sha256$"), "{hash}");
    assert!(!hash.contains(password.trim()), "{hash}");
    let first_token = node_token(&first);

    // Another machine with the join token but not the password: refused, and it keeps nothing.
    let second = dir.path().join("second");
    let text = refused(&second, "taken");
    assert!(text.contains(secret), "{text}");
    assert!(!second.exists(), "a refused join left {}", second.display());
    // The first node's credential still works: it was not replaced.
    let as_first = Kubectl::new(first.join("node/kubeconfig"), dir.path().join("cache")).unwrap();
    assert!(as_first.ok(&["get", "node", "taken"]).is_ok());
    // Nor may a join take the name of the `tug up` machine's own node, which never joined.
    let text = refused(&dir.path().join("third"), &own_node);
    assert!(text.contains("did not join with a token"), "{text}");

    // The first machine, its credentials lost but its password kept, joins again as itself.
    let log = agent.log();
    assert!(
        agent.stop().unwrap(),
        "the agent did not stop cleanly:\n{log}"
    );
    std::fs::remove_dir_all(first.join("node")).unwrap();
    let mut agent = start(&first, "first-again.log");
    assert_ne!(node_token(&first), first_token);
    let log = agent.log();
    assert!(
        agent.stop().unwrap(),
        "the agent did not stop cleanly:\n{log}"
    );

    // Once the node is deleted, its password goes with it and the name is free again.
    kubectl.ok(&["delete", "node", "taken"]).unwrap();
    wait_for(
        "the password Secret to go with the Node",
        STARTUP_TIMEOUT,
        || {
            kubectl
                .run(&["-n", "kube-system", "get", "secret", secret])
                .is_ok_and(|o| !o.status.success())
        },
    );
    let mut agent = start(&second, "second.log");
    assert_eq!(mode(&second.join("node-password")), 0o600);
    // Now the first machine is the stranger.
    std::fs::remove_dir_all(first.join("node")).unwrap();
    refused(&first, "taken");
    assert!(
        first.join("node-password").exists(),
        "its own password was removed"
    );
    let log = agent.log();
    assert!(
        agent.stop().unwrap(),
        "the agent did not stop cleanly:\n{log}"
    );
}

#[test]
fn a_node_credential_from_one_api_server_works_on_another_of_the_same_etcd() {
    if kubectl_or_skip().is_none() {
        return;
    }
    let Some(etcd) = tugboat_testkit::etcd::spawn_etcd().unwrap() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut first = ApiServer::start_on_etcd(dir.path(), "first", &etcd.endpoint(), None).unwrap();
    // The second API server serves the same cluster: the same CA.
    let mut second = ApiServer::start_on_etcd(
        dir.path(),
        "second",
        &etcd.endpoint(),
        Some(&first.data_dir()),
    )
    .unwrap();
    let token_file = dir.path().join("first/join-token");
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap(),
        std::fs::read_to_string(dir.path().join("second/join-token")).unwrap(),
        "both API servers hand out the cluster's join token"
    );

    let data = dir.path().join("node");
    let node = [
        "agent",
        "--runtime=sim",
        "--node-name=joined",
        "--data-dir",
        data.to_str().unwrap(),
        "--kubelet-port=0",
        "--node-ip=127.0.0.1",
    ];
    let first_url = first.url();
    let second_url = second.url();
    let mut agent = Component::start(
        None,
        &[
            &node[..],
            &[
                "--server",
                &first_url,
                "--token-file",
                token_file.to_str().unwrap(),
            ],
        ]
        .concat(),
        &log(dir.path(), "agent"),
    )
    .unwrap();
    let kubectl = Kubectl::new(
        dir.path().join("second/kubeconfig"),
        dir.path().join("admin-cache"),
    )
    .unwrap();
    wait_for("the node to join", STARTUP_TIMEOUT, || {
        assert!(!agent.exited(), "tug agent exited:\n{}", agent.log());
        node_ready_is(&kubectl, "joined", "True")
    });
    // The credential the first API server issued is good on the second.
    let as_node =
        Kubectl::new(data.join("node/kubeconfig"), dir.path().join("node-cache")).unwrap();
    let on_second = as_node
        .run(&["--server", &second_url, "get", "node", "joined"])
        .unwrap();
    assert!(on_second.status.success(), "{}", stderr(&on_second));
    let wrong = as_node
        .env("KUBECONFIG", "")
        .run(&[
            "--server",
            &second_url,
            "--token",
            "not-a-node-token",
            "get",
            "node",
            "joined",
        ])
        .unwrap();
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).contains("Unauthorized"),
        "{}",
        stderr(&wrong)
    );

    // The agent moves to the second API server without the token, the first one gone.
    let log_text = agent.log();
    assert!(agent.stop().unwrap(), "{log_text}");
    let log_text = first.log();
    assert!(first.stop().unwrap(), "{log_text}");
    let mut agent = Component::start(
        None,
        &[&node[..], &["--server", &second_url]].concat(),
        &log(dir.path(), "agent-again"),
    )
    .unwrap();
    wait_for(
        "the agent on the second API server",
        STARTUP_TIMEOUT,
        || {
            assert!(!agent.exited(), "tug agent exited:\n{}", agent.log());
            agent.log().contains("Tugboat node agent running")
        },
    );
    let log_text = agent.log();
    assert!(!log_text.contains("joined https"), "{log_text}");
    assert!(agent.stop().unwrap(), "{log_text}");
    let log_text = second.log();
    assert!(second.stop().unwrap(), "{log_text}");
    drop(etcd);
}

/// `tug reset` of the second node's data dir, inside its namespace, when dropped.
struct ResetInNetns<'a> {
    netns: &'a NetNs,
    data_dir: PathBuf,
}

impl Drop for ResetInNetns<'_> {
    fn drop(&mut self) {
        if !self.data_dir.exists() {
            return;
        }
        let dir = self.data_dir.to_string_lossy().into_owned();
        match self
            .netns
            .run_tug(&["reset", "--data-dir", &dir], RESET_TIMEOUT)
        {
            Ok(output) if output.status.success() => {}
            Ok(output) => eprintln!(
                "tugboat-e2e: tug reset in {}: {}",
                self.netns.name(),
                stderr(&output)
            ),
            Err(error) => eprintln!("tugboat-e2e: tug reset in {}: {error:#}", self.netns.name()),
        }
    }
}

#[test]
fn a_node_in_another_network_namespace_dies_and_its_pods_move_on_real_containers() {
    if !containers_or_skip() || kubectl_or_skip().is_none() {
        return;
    }
    // Dropped last: everything inside is gone by then.
    let tag = std::process::id() % 100_000;
    let host_ip = Ipv4Addr::new(10, 251, 0, 1);
    let ns_ip = Ipv4Addr::new(10, 251, 0, 2);
    let netns = NetNs::create(tag, host_ip, ns_ip).unwrap();
    // Node 1: the whole cluster, its API reachable from the namespace.
    let cluster = Cluster::start_containerd_listening_on(host_ip, &NODE_TIMEOUTS).unwrap();
    let kubectl = cluster.kubectl().unwrap();
    let survivor = kubectl.get_jsonpath(&["nodes"], "{.items[0].metadata.name}");
    assert!(!survivor.is_empty());

    // Node 2: its own data dir, containerd, pod subnet and bridge, inside the namespace.
    let node2_dir = tempfile::tempdir().unwrap();
    let data_dir = node2_dir.path().join("data");
    let _reset = ResetInNetns {
        netns: &netns,
        data_dir: data_dir.clone(),
    };
    let victim = "tug-e2e-node2";
    let token_file = cluster.data_dir().join("join-token");
    let server = cluster.url();
    let ns_ip_text = ns_ip.to_string();
    let mut agent = Component::start(
        Some(netns.name()),
        &[
            "agent",
            "--server",
            &server,
            "--token-file",
            token_file.to_str().unwrap(),
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--node-name",
            victim,
            "--node-ip",
            &ns_ip_text,
            "--kubelet-port=10250",
            "--pod-cidr=10.89.0.0/16",
        ],
        &node2_dir.path().join("agent.log"),
    )
    .unwrap();
    wait_for("the second node", Duration::from_secs(90), || {
        assert!(!agent.exited(), "tug agent exited:\n{}", agent.log());
        node_ready_is(&kubectl, victim, "True")
    });
    let internal_ip = kubectl.get_jsonpath(
        &["node", victim],
        "{.status.addresses[?(@.type==\"InternalIP\")].address}",
    );
    assert_eq!(internal_ip, ns_ip_text);

    node_dies_and_its_pods_move(
        &kubectl,
        &survivor,
        victim,
        Duration::from_secs(120),
        || agent.kill(),
    );
    let wide = kubectl
        .ok(&["get", "pods", "-n", "spread", "-o", "wide"])
        .unwrap();
    eprintln!("{wide}");
    drop(agent);
}

#[test]
fn standby_schedulers_and_controllers_take_over_from_dead_or_frozen_leaders() {
    if kubectl_or_skip().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let api_dir = dir.path().join("api");
    let port = tugboat_testkit::net::free_port().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let mut apiserver = Component::start(
        None,
        &[
            "apiserver",
            "--data-dir",
            api_dir.to_str().unwrap(),
            "--listen",
            &listen,
        ],
        &log(dir.path(), "apiserver"),
    )
    .unwrap();
    let kubeconfig = api_dir.join("kubeconfig");
    let kubectl = Kubectl::new(kubeconfig.clone(), dir.path().join("kubectl-cache")).unwrap();
    wait_for("the API server", STARTUP_TIMEOUT, || {
        assert!(!apiserver.exited(), "{}", apiserver.log());
        kubeconfig.is_file()
            && kubectl
                .run(&["get", "--raw", "/readyz"])
                .is_ok_and(|o| o.status.success())
    });
    let kubeconfig_flag = ["--kubeconfig", kubeconfig.to_str().unwrap()];
    let start = |what: &str, index: usize| {
        Component::start(
            None,
            &[&[what][..], &kubeconfig_flag].concat(),
            &log(dir.path(), &format!("{what}-{index}")),
        )
        .unwrap()
    };
    let mut schedulers = [start("scheduler", 1), start("scheduler", 2)];
    let mut controllers = [start("controllers", 1), start("controllers", 2)];
    let server = format!("https://{listen}");
    let mut agent = Component::start(
        None,
        &[
            "agent",
            "--runtime=sim",
            "--node-name",
            "only",
            "--data-dir",
            dir.path().join("only").to_str().unwrap(),
            "--server",
            &server,
            "--token-file",
            api_dir.join("join-token").to_str().unwrap(),
            "--kubelet-port=0",
            "--node-ip=127.0.0.1",
        ],
        &log(dir.path(), "agent"),
    )
    .unwrap();

    let leader = |lease: &str, of: &[Component; 2]| -> Option<usize> {
        let pid = holder_pid(&kubectl, lease)?;
        of.iter().position(|c| c.pid() == Some(pid))
    };
    wait_for("both leases held", Duration::from_secs(60), || {
        leader("kube-scheduler", &schedulers).is_some()
            && leader("kube-controller-manager", &controllers).is_some()
    });
    let k = kubectl.namespace("default");
    let deployment = |name: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: c\n        image: busybox\n"
        )
    };
    let ready = |name: &str| {
        k.get_jsonpath(&["deployment", name], "{.status.readyReplicas}")
            .trim()
            == "2"
    };
    k.apply(&deployment("before")).unwrap();
    wait_for("the first deployment", Duration::from_secs(60), || {
        ready("before")
    });

    // The leading controller manager dies: the standby takes over within the lease (15 s).
    let dead = leader("kube-controller-manager", &controllers).unwrap();
    controllers[dead].kill();
    let killed_at = std::time::Instant::now();
    wait_for(
        "the standby controller manager to lead",
        Duration::from_secs(30),
        || leader("kube-controller-manager", &controllers) == Some(1 - dead),
    );
    let failover = killed_at.elapsed();
    assert!(failover < Duration::from_secs(20), "took {failover:?}");

    // The leading scheduler freezes (SIGSTOP): the standby leads; resumed, the old one stays
    // a standby.
    let frozen = leader("kube-scheduler", &schedulers).unwrap();
    schedulers[frozen].freeze().unwrap();
    wait_for(
        "the standby scheduler to lead",
        Duration::from_secs(30),
        || leader("kube-scheduler", &schedulers) == Some(1 - frozen),
    );
    k.apply(&deployment("after")).unwrap();
    wait_for(
        "a deployment made after both failovers",
        Duration::from_secs(60),
        || ready("after"),
    );
    schedulers[frozen].resume().unwrap();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        leader("kube-scheduler", &schedulers),
        Some(1 - frozen),
        "the resumed scheduler stepped down"
    );

    let [first, second] = &mut controllers;
    let alive = if dead == 0 { second } else { first };
    for component in schedulers
        .iter_mut()
        .chain([alive, &mut agent, &mut apiserver])
    {
        let log = component.log();
        assert!(component.stop().unwrap(), "did not stop cleanly:\n{log}");
    }
}

/// Name and nice value of each thread of process `pid`, from `/proc`.
fn threads_nice(pid: u32) -> Vec<(String, i32)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| {
            let task = task.ok()?.path();
            let name = std::fs::read_to_string(task.join("comm")).ok()?;
            let stat = std::fs::read_to_string(task.join("stat")).ok()?;
            // After the name (which may hold spaces): state is field 3, nice field 19.
            let after = stat.get(stat.rfind(')')? + 2..)?;
            let nice = after.split_whitespace().nth(16)?.parse().ok()?;
            Some((name.trim().to_owned(), nice))
        })
        .collect()
}

#[test]
fn simulated_nodes_run_on_threads_below_the_control_planes_priority() {
    if kubectl_or_skip().is_none() {
        return;
    }
    let cluster = Cluster::start_with_args(&["--nodes", "3"]).unwrap();
    let admin = cluster.kubectl().unwrap();
    // The nodes on their lower-priority threads work: all three report Ready.
    tugboat_e2e::wait::wait_for("3 Ready nodes", STARTUP_TIMEOUT, || {
        admin
            .ok(&["get", "nodes", "--no-headers"])
            .is_ok_and(|nodes| nodes.lines().filter(|l| l.contains(" Ready ")).count() == 3)
    });
    let pid = cluster.pid().unwrap();
    let threads = threads_nice(pid);
    let main_nice = threads
        .iter()
        .find(|(name, _)| name == "tug")
        .map(|(_, nice)| *nice)
        .unwrap_or_else(|| panic!("no main thread in {threads:?}"));
    let sim: Vec<i32> = threads
        .iter()
        .filter(|(name, _)| name == "sim-nodes")
        .map(|(_, nice)| *nice)
        .collect();
    assert!(!sim.is_empty(), "no sim-nodes threads in {threads:?}");
    assert!(
        sim.iter().all(|nice| *nice == (main_nice + 10).min(19)),
        "simulated nodes' threads 10 nicer than the main thread: {threads:?}"
    );
    // Every other thread (the control plane's runtime, the store's writer) keeps the
    // process's priority.
    assert!(
        threads
            .iter()
            .filter(|(name, _)| name != "sim-nodes")
            .all(|(_, nice)| *nice == main_nice),
        "{threads:?}"
    );
    assert!(
        threads.iter().any(|(name, _)| name == "store-writer"),
        "{threads:?}"
    );
}
