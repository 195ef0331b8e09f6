//! The service proxy's rules applied for real, inside a network namespace this test creates
//! and removes: busybox httpd listens on a "pod" address inside the namespace, and curl
//! reaches it through the ClusterIP and through a NodePort on 127.0.0.1. No traffic leaves the
//! namespace. Needs root, `ip`, `iptables`, busybox and curl; skipped with a message otherwise
//! (unless `CI` is set, where skipping is a failure).

use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};
use tugboat_nodeagent::proxy::rules::{self, Backend, Protocol, RulesConfig, ServicePortRules};
use tugboat_nodeagent::proxy::{NetHost, apply};

fn can_run() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    let tools = ["ip", "iptables-restore", "busybox", "curl"]
        .iter()
        .all(|tool| {
            std::process::Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
    root && tools
}

async fn sh(args: &[&str]) -> anyhow::Result<String> {
    let output = tokio::time::timeout(
        Duration::from_secs(20),
        Command::new(args[0])
            .args(&args[1..])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("command timed out")??;
    if !output.status.success() {
        bail!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The namespace, removed on drop (best effort, synchronously).
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

async fn fetch(ns: &str, url: &str) -> anyhow::Result<String> {
    sh(&[
        "ip",
        "netns",
        "exec",
        ns,
        "curl",
        "-sS",
        "--noproxy",
        "*",
        "--max-time",
        "3",
        url,
    ])
    .await
}

#[tokio::test]
async fn rules_route_cluster_ip_and_localhost_node_port_inside_a_namespace() -> anyhow::Result<()> {
    if !can_run() {
        if std::env::var_os("CI").is_some() {
            bail!("proxy netns test needs root, ip, iptables, busybox and curl");
        }
        eprintln!("skipping: needs root, ip, iptables-restore, busybox and curl");
        return Ok(());
    }
    let name = format!("tugproxy-{}", std::process::id());
    sh(&["ip", "netns", "add", &name]).await?;
    let ns = Netns(name.clone());
    let result = exercise(&ns.0).await;
    drop(ns);
    result
}

async fn exercise(ns: &str) -> anyhow::Result<()> {
    let exec = |args: &[&str]| {
        let mut full = vec!["ip", "netns", "exec", ns];
        full.extend(args);
        full.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run = |args: &[&str]| {
        let full = exec(args);
        async move {
            let refs: Vec<&str> = full.iter().map(String::as_str).collect();
            sh(&refs).await
        }
    };
    run(&["ip", "link", "set", "lo", "up"]).await?;
    // A "pod" address inside the namespace.
    run(&["ip", "addr", "add", "10.88.7.2/32", "dev", "lo"]).await?;
    let www = tempfile::tempdir()?;
    std::fs::write(www.path().join("index.html"), "hello from the pod\n")?;
    let www_path = www.path().to_string_lossy().into_owned();
    let mut httpd: Child = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "busybox",
            "httpd",
            "-f",
            "-p",
            "10.88.7.2:8080",
            "-h",
            &www_path,
        ])
        .kill_on_drop(true)
        .spawn()?;

    let host = NetHost {
        netns: Some(ns.to_owned()),
    };
    let outcome = async {
        host.enable_route_localnet().await?;
        host.ensure_service_route("10.96.0.0/16").await?;
        let config = RulesConfig {
            pod_cidr: "10.88.0.0/16".into(),
        };
        let port = ServicePortRules {
            id: "default/web:http".into(),
            cluster_ip: Some(Ipv4Addr::new(10, 96, 0, 20)),
            port: 80,
            protocol: Protocol::Tcp,
            node_port: Some(30080),
            affinity_seconds: None,
            backends: vec![Backend {
                ip: Ipv4Addr::new(10, 88, 7, 2),
                port: 8080,
            }],
        };
        let desired = rules::generate(&config, std::slice::from_ref(&port));
        apply(&host, None, &desired).await?;
        // Applying again from a known state is a no-op; jumps are not duplicated.
        apply(&host, Some(&desired), &desired).await?;
        apply(&host, None, &desired).await?;
        let saved = run(&["iptables-save", "-t", "nat"]).await?;
        assert_eq!(
            saved.matches("-A OUTPUT -j TUGBOAT-SERVICES").count(),
            1,
            "{saved}"
        );

        // Wait for httpd, then go through the ClusterIP and the NodePort on 127.0.0.1.
        let mut direct = Err(anyhow::anyhow!("not tried"));
        for _ in 0..50 {
            direct = fetch(ns, "http://10.88.7.2:8080/").await;
            if direct.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(direct?, "hello from the pod\n");
        assert_eq!(
            fetch(ns, "http://10.96.0.20:80/").await?,
            "hello from the pod\n"
        );
        assert_eq!(
            fetch(ns, "http://127.0.0.1:30080/").await?,
            "hello from the pod\n"
        );

        // No endpoints: the ClusterIP is rejected, and the stale endpoint chain is gone.
        let empty = ServicePortRules {
            backends: vec![],
            ..port
        };
        let next = rules::generate(&config, &[empty]);
        apply(&host, Some(&desired), &next).await?;
        assert!(fetch(ns, "http://10.96.0.20:80/").await.is_err());
        let saved = run(&["iptables-save", "-t", "nat"]).await?;
        assert!(!saved.contains("TUGBOAT-SEP-"), "{saved}");
        // An unknown ClusterIP goes to tug-svc (or lo without dummy support), nowhere else.
        let route = run(&["ip", "route", "get", "10.96.5.5"]).await?;
        assert!(
            route.contains("dev tug-svc") || route.contains("dev lo"),
            "{route}"
        );

        host.cleanup().await?;
        let saved = run(&["iptables-save"]).await?;
        assert!(!saved.contains("TUGBOAT"), "{saved}");
        let links = run(&["ip", "link"]).await?;
        assert!(!links.contains("tug-svc"), "{links}");
        Ok::<_, anyhow::Error>(())
    }
    .await;
    let _ = httpd.kill().await;
    outcome
}
