//! Authorization with the real kubectl against `tug up --runtime sim`: users from lines added
//! to `tokens.csv`, the default `view` and `edit` roles bound with `kubectl create
//! (cluster)rolebinding`, kube's Forbidden messages, `kubectl auth can-i` / `whoami`, and the
//! Node authorizer keeping a node away from another node's pod. The components keep working
//! with the admin's token (system:masters) throughout.

#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::time::{Duration, Instant};

use tugboat_e2e::{Cluster, Kubectl, kubectl_or_skip};

/// Run `kubectl` until `args` succeed (bindings take effect once the watch cache has them).
fn eventually_ok(kubectl: &Kubectl, args: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let output = kubectl.run(args).unwrap();
        if output.status.success() {
            return String::from_utf8_lossy(&output.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `kubectl auth can-i ...` as printed, and whether it exited 0.
fn can_i(kubectl: &Kubectl, args: &[&str]) -> (String, bool) {
    let mut full = vec!["auth", "can-i"];
    full.extend(args);
    let output = kubectl.run(&full).unwrap();
    (
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        output.status.success(),
    )
}

#[test]
fn view_edit_can_i_whoami_and_nodes_with_kubectl() {
    if kubectl_or_skip().is_none() {
        return;
    }
    let mut cluster = Cluster::start().unwrap();
    let admin = cluster.kubectl().unwrap();
    for ns in ["rbac-a", "rbac-b"] {
        admin.ok(&["create", "namespace", ns]).unwrap();
    }
    admin
        .ok(&["run", "web", "--image=busybox", "-n", "rbac-a"])
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let node = loop {
        let node = admin.get_jsonpath(&["pod", "web", "-n", "rbac-a"], "{.spec.nodeName}");
        if !node.is_empty() {
            break node;
        }
        assert!(Instant::now() < deadline, "web was never scheduled");
        std::thread::sleep(Duration::from_millis(200));
    };

    // New users: lines in tokens.csv (kube-apiserver's static token file), read at start.
    cluster.stop().unwrap();
    let mut tokens = std::fs::OpenOptions::new()
        .append(true)
        .open(cluster.data_dir().join("tokens.csv"))
        .unwrap();
    writeln!(tokens, "viewer-token,viewer,viewer-uid,\"qa\"").unwrap();
    writeln!(tokens, "node-token,system:node:{node},,\"system:nodes\"").unwrap();
    writeln!(
        tokens,
        "other-node-token,system:node:elsewhere,,\"system:nodes\""
    )
    .unwrap();
    drop(tokens);
    cluster.restart().unwrap();
    let viewer = admin.clone();
    let as_viewer = |args: &[&str]| -> Vec<String> {
        let mut full = vec!["--token=viewer-token".to_owned()];
        full.extend(args.iter().map(|a| (*a).to_owned()));
        full
    };
    let run_viewer = |args: &[&str]| viewer.run(&as_viewer(args)).unwrap();

    // No binding yet: even listing is forbidden, in kube's words.
    let denied = run_viewer(&["get", "pods", "-n", "rbac-a"]);
    assert!(!denied.status.success());
    assert_eq!(
        String::from_utf8_lossy(&denied.stderr).trim(),
        r#"Error from server (Forbidden): pods is forbidden: User "viewer" cannot list resource "pods" in API group "" in the namespace "rbac-a""#
    );

    let created = admin
        .ok(&[
            "create",
            "clusterrolebinding",
            "viewer-view",
            "--clusterrole=view",
            "--user=viewer",
        ])
        .unwrap();
    assert_eq!(
        created.trim(),
        "clusterrolebinding.rbac.authorization.k8s.io/viewer-view created"
    );
    let listed = eventually_ok(
        &viewer,
        &["--token=viewer-token", "get", "pods", "-n", "rbac-a"],
    );
    assert!(listed.contains("web"), "{listed}");
    let delete = run_viewer(&["delete", "pod", "web", "-n", "rbac-a"]);
    assert!(!delete.status.success());
    assert_eq!(
        String::from_utf8_lossy(&delete.stderr).trim(),
        r#"Error from server (Forbidden): pods "web" is forbidden: User "viewer" cannot delete resource "pods" in API group "" in the namespace "rbac-a""#
    );

    // edit in rbac-b only.
    admin
        .ok(&[
            "create",
            "rolebinding",
            "viewer-edit",
            "--clusterrole=edit",
            "--user=viewer",
            "-n",
            "rbac-b",
        ])
        .unwrap();
    let made = eventually_ok(
        &viewer,
        &[
            "--token=viewer-token",
            "create",
            "configmap",
            "settings",
            "-n",
            "rbac-b",
        ],
    );
    assert_eq!(made.trim(), "configmap/settings created");
    let elsewhere = run_viewer(&["create", "configmap", "settings", "-n", "rbac-a"]);
    assert_eq!(
        String::from_utf8_lossy(&elsewhere.stderr).trim(),
        r#"error: failed to create configmap: configmaps is forbidden: User "viewer" cannot create resource "configmaps" in API group "" in the namespace "rbac-a""#
    );
    let table = admin
        .ok(&["get", "rolebindings", "-n", "rbac-b", "-o", "wide"])
        .unwrap();
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    );
    assert_eq!(lines[1][..2], ["viewer-edit", "ClusterRole/edit"]);
    assert_eq!(lines[1][3], "viewer");

    // A namespaced Role limited to one name.
    admin
        .ok(&[
            "create",
            "role",
            "one-secret",
            "--verb=get",
            "--resource=secrets",
            "--resource-name=s1",
            "-n",
            "rbac-a",
        ])
        .unwrap();
    admin
        .ok(&[
            "create",
            "rolebinding",
            "viewer-one-secret",
            "--role=one-secret",
            "--user=viewer",
            "-n",
            "rbac-a",
        ])
        .unwrap();
    let roles = admin.ok(&["get", "roles", "-n", "rbac-a"]).unwrap();
    assert_eq!(
        roles
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["NAME", "CREATED", "AT"]
    );
    let clusterroles = admin.ok(&["get", "clusterroles", "-o", "name"]).unwrap();
    for role in ["cluster-admin", "admin", "edit", "view"] {
        assert!(
            clusterroles
                .lines()
                .any(|l| l == format!("clusterrole.rbac.authorization.k8s.io/{role}")),
            "{clusterroles}"
        );
    }

    // kubectl auth can-i / --list / whoami, for the viewer and for the admin acting as it.
    let viewer_can_i = |args: &[&str]| {
        let mut full = vec!["--token=viewer-token", "auth", "can-i"];
        full.extend(args);
        let output = viewer.run(&full).unwrap();
        (
            String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            output.status.success(),
        )
    };
    assert_eq!(
        viewer_can_i(&["delete", "pods", "-n", "rbac-a"]),
        ("no".to_owned(), false)
    );
    assert_eq!(
        viewer_can_i(&["list", "pods", "-n", "rbac-a"]),
        ("yes".to_owned(), true)
    );
    assert_eq!(
        viewer_can_i(&["create", "configmaps", "-n", "rbac-b"]),
        ("yes".to_owned(), true)
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while viewer_can_i(&["get", "secrets/s1", "-n", "rbac-a"]).0 != "yes" {
        assert!(
            Instant::now() < deadline,
            "the one-secret Role never applied"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        viewer_can_i(&["get", "secrets/s2", "-n", "rbac-a"]),
        ("no".to_owned(), false)
    );
    assert_eq!(
        can_i(&admin, &["delete", "pods", "-n", "rbac-a", "--as=viewer"]),
        ("no".to_owned(), false)
    );
    assert_eq!(
        can_i(&admin, &["delete", "pods", "-n", "rbac-a"]),
        ("yes".to_owned(), true)
    );
    let list = viewer
        .ok(&[
            "--token=viewer-token",
            "auth",
            "can-i",
            "--list",
            "-n",
            "rbac-b",
        ])
        .unwrap();
    let header: Vec<&str> = list.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "Resources",
            "Non-Resource",
            "URLs",
            "Resource",
            "Names",
            "Verbs"
        ]
    );
    let configmaps = list
        .lines()
        .find(|l| l.starts_with("configmaps "))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(
        configmaps.contains("create") && configmaps.contains("delete"),
        "{configmaps}"
    );
    assert!(
        list.contains("selfsubjectaccessreviews.authorization.k8s.io"),
        "{list}"
    );
    let whoami = viewer
        .ok(&["--token=viewer-token", "auth", "whoami"])
        .unwrap();
    let whoami: Vec<Vec<&str>> = whoami
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(whoami.contains(&vec!["Username", "viewer"]), "{whoami:?}");
    assert!(
        whoami.contains(&vec!["Groups", "[qa", "system:authenticated]"]),
        "{whoami:?}"
    );
    let admin_whoami = admin
        .ok(&[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ])
        .unwrap();
    assert_eq!(admin_whoami, "admin");

    // A node reads the pods bound to it, not another node's.
    let own = admin
        .ok(&[
            "--token=node-token",
            "get",
            "pod",
            "web",
            "-n",
            "rbac-a",
            "-o",
            "name",
        ])
        .unwrap();
    assert_eq!(own.trim(), "pod/web");
    let other = admin
        .fails(&[
            "--token=other-node-token",
            "get",
            "pod",
            "web",
            "-n",
            "rbac-a",
        ])
        .unwrap();
    assert_eq!(
        other.trim(),
        r#"Error from server (Forbidden): pods "web" is forbidden: User "system:node:elsewhere" cannot get resource "pods" in API group "" in the namespace "rbac-a": no relationship found between node 'elsewhere' and this object"#
    );

    // The components still act as the admin: a deployment rolls out.
    admin
        .ok(&[
            "create",
            "deployment",
            "app",
            "--image=busybox",
            "-n",
            "rbac-b",
        ])
        .unwrap();
    let rolled = admin
        .ok(&[
            "rollout",
            "status",
            "deployment/app",
            "-n",
            "rbac-b",
            "--timeout=60s",
        ])
        .unwrap();
    assert!(rolled.contains("successfully rolled out"), "{rolled}");
}

#[test]
fn kubectl_create_token_signs_in_as_the_service_account() {
    if kubectl_or_skip().is_none() {
        return;
    }
    let mut cluster = Cluster::start().unwrap();
    let admin = cluster.kubectl().unwrap();
    admin.ok(&["create", "serviceaccount", "robot"]).unwrap();
    let token = admin
        .ok(&["create", "token", "robot"])
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(token.split('.').count(), 3, "not a JWT: {token}");
    let with_token = format!("--token={token}");

    let whoami = admin
        .ok(&[
            &with_token,
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
        ])
        .unwrap();
    assert_eq!(
        whoami,
        r#"system:serviceaccount:default:robot ["system:serviceaccounts","system:serviceaccounts:default","system:authenticated"]"#
    );

    // RBAC denies until the service account is bound.
    let denied = admin.run(&[&with_token, "get", "pods"]).unwrap();
    assert!(!denied.status.success());
    assert_eq!(
        String::from_utf8_lossy(&denied.stderr).trim(),
        r#"Error from server (Forbidden): pods is forbidden: User "system:serviceaccount:default:robot" cannot list resource "pods" in API group "" in the namespace "default""#
    );
    admin
        .ok(&[
            "create",
            "rolebinding",
            "robot-view",
            "--clusterrole=view",
            "--serviceaccount=default:robot",
        ])
        .unwrap();
    eventually_ok(&admin, &[&with_token, "get", "pods"]);
    let (answer, allowed) = can_i(&admin, &[&with_token, "delete", "pods"]);
    assert_eq!((answer.as_str(), allowed), ("no", false));

    // Shorter than upstream's minimum: refused in upstream's words.
    let short = admin
        .run(&["create", "token", "robot", "--duration=5m"])
        .unwrap();
    assert!(!short.status.success());
    let stderr = String::from_utf8_lossy(&short.stderr);
    assert!(
        stderr.contains("spec.expirationSeconds: Invalid value: 300: may not specify a duration less than 10 minutes"),
        "{stderr}"
    );
    let missing = admin.run(&["create", "token", "nobody"]).unwrap();
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains(r#"serviceaccounts "nobody" not found"#),
        "{stderr}"
    );

    // The signing key is kept in the data dir: the token outlives a restart.
    cluster.stop().unwrap();
    assert!(cluster.data_dir().join("pki/sa.key").is_file());
    cluster.restart().unwrap();
    eventually_ok(&admin, &[&with_token, "get", "pods"]);

    // Deleting the service account kills its tokens.
    admin.ok(&["delete", "serviceaccount", "robot"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let output = admin.run(&[&with_token, "get", "pods"]).unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("Unauthorized") {
            break;
        }
        assert!(Instant::now() < deadline, "the token still works: {stderr}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn client_certificates_signed_by_the_cluster_ca_are_users() {
    if kubectl_or_skip().is_none() {
        return;
    }
    let cluster = Cluster::start().unwrap();
    let admin = cluster.kubectl().unwrap();
    let ca = tugboat_apiserver::tls::ClusterCa::load(&cluster.data_dir().join("pki")).unwrap();
    let dir = cluster.dir().join("certs");
    std::fs::create_dir_all(&dir).unwrap();
    let write_user = |name: &str, group: &str| -> Vec<String> {
        let (cert, key) = ca.sign_user(name, Some(group)).unwrap();
        let cert_file = dir.join(format!("{name}.crt"));
        let key_file = dir.join(format!("{name}.key"));
        std::fs::write(&cert_file, cert).unwrap();
        std::fs::write(&key_file, key).unwrap();
        vec![
            format!("--server={}", cluster.url()),
            format!(
                "--certificate-authority={}",
                cluster.data_dir().join("pki/ca.crt").display()
            ),
            format!("--client-certificate={}", cert_file.display()),
            format!("--client-key={}", key_file.display()),
        ]
    };
    // An empty kubeconfig: the certificate is the only credential.
    let empty = dir.join("kubeconfig");
    std::fs::write(&empty, "apiVersion: v1\nkind: Config\n").unwrap();
    let bare = Kubectl::new(empty, dir.join("cache")).unwrap();
    let run = |flags: &[String], args: &[&str]| {
        let mut full: Vec<String> = flags.to_vec();
        full.extend(args.iter().map(|a| (*a).to_owned()));
        bare.run(&full).unwrap()
    };

    let carol = write_user("carol", "qa");
    let whoami = run(
        &carol,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
        ],
    );
    assert!(
        whoami.status.success(),
        "{}",
        String::from_utf8_lossy(&whoami.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&whoami.stdout),
        r#"carol ["qa","system:authenticated"]"#
    );
    let denied = run(&carol, &["get", "pods"]);
    assert_eq!(
        String::from_utf8_lossy(&denied.stderr).trim(),
        r#"Error from server (Forbidden): pods is forbidden: User "carol" cannot list resource "pods" in API group "" in the namespace "default""#
    );
    admin
        .ok(&[
            "create",
            "rolebinding",
            "qa-view",
            "--clusterrole=view",
            "--group=qa",
        ])
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !run(&carol, &["get", "pods"]).status.success() {
        assert!(Instant::now() < deadline, "the group binding never took");
        std::thread::sleep(Duration::from_millis(200));
    }

    // O=system:masters is an administrator, as upstream.
    let root = write_user("root", "system:masters");
    let deleted = run(&root, &["delete", "rolebinding", "qa-view"]);
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
}
