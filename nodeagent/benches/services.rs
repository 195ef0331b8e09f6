//! Issue 9's Service benchmark, inside a network namespace this bench creates and removes (no
//! traffic leaves it):
//!
//! 1. Rule-sync latency with 1,000 Services: one endpoint changes, and the proxy's sync path
//!    (Services and EndpointSlices → model → rules → `iptables-restore --noflush` of the
//!    changed chains) runs; p50/p99/max over many changes. The proxy's 100 ms debounce
//!    comes on top in a running agent.
//! 2. Requests per second to a minimal HTTP server through the ClusterIP versus straight to the pod
//!    IP, in the same run, alternating, one new connection per request (so every request
//!    pays for the DNAT), with the 1,000 Services' rules in place. As on a node: the rules are
//!    in a "node" namespace, and the client and the server are "pods", namespaces of their own
//!    joined to it by veth pairs, so both paths cross the node's forwarding and conntrack and
//!    differ by the proxy's rules alone.
//!
//! 3. The cluster DNS with the same 1,000 Services: the zone rebuild after a change, and
//!    A questions answered per second over UDP on 127.0.0.1 (one client, one at a time).
//!
//! `cargo bench -p tugboat-nodeagent --bench services`. Needs root, `ip` and
//! `iptables-restore`; says so and exits otherwise. Run it under the machine's containers lock: it
//! uses iptables.

use std::io::{Read as _, Write as _};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;
use tugboat_nodeagent::proxy::rules::{self, RulesConfig};
use tugboat_nodeagent::proxy::{NetHost, apply, model};

/// Services in the rules (`TUG_BENCH_SERVICES` overrides, e.g. 2 to see the per-rule cost).
fn service_count() -> usize {
    std::env::var("TUG_BENCH_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n >= 2)
        .unwrap_or(1_000)
}
const CHANGES: usize = 200;
const POD: &str = "10.88.7.2";
/// The client's address (another "pod").
const CLIENT: &str = "10.88.7.3";
const ROUND: Duration = Duration::from_secs(3);
const ROUNDS: usize = 4;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--client") {
        // The client half, run inside the namespace: requests to `addr` for ROUND.
        let addr = args.get(i + 1).cloned().unwrap_or_default();
        let count = if args.iter().any(|a| a == "--keep-alive") {
            kept_alive_requests(&addr, ROUND)
        } else {
            requests(&addr, ROUND)
        };
        println!("{count}");
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--server") {
        // A minimal HTTP server (no fork per connection, unlike busybox httpd, so the
        // proxy's share of each request shows), run inside the namespace until killed.
        serve(args.get(i + 1).map(String::as_str).unwrap_or_default());
        return;
    }
    if !can_run() {
        eprintln!("skipping: needs root, ip and iptables-restore");
        return;
    }
    let name = format!("tugbench-{}", std::process::id());
    let namespaces = Namespaces {
        client: format!("{name}-client"),
        server: format!("{name}-server"),
        node: name,
    };
    for ns in [&namespaces.node, &namespaces.client, &namespaces.server] {
        sh(&["ip", "netns", "add", ns]);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = std::panic::catch_unwind(|| runtime.block_on(bench(&namespaces)));
    for ns in [&namespaces.node, &namespaces.client, &namespaces.server] {
        let _ = Command::new("ip").args(["netns", "del", ns]).status();
    }
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

fn can_run() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    root && ["ip", "iptables-restore"].iter().all(|tool| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn sh(args: &[&str]) -> String {
    let output = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run command");
    assert!(
        output.status.success(),
        "{} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

const KEEP_ALIVE_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello\n";

fn serve(addr: &str) {
    let listener = std::net::TcpListener::bind(addr).expect("bind");
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        std::thread::spawn(move || {
            // HTTP/1.0: one answer, then close; HTTP/1.1: answer every request on it.
            let mut request = Vec::with_capacity(1024);
            let mut chunk = [0u8; 1024];
            loop {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&chunk[..n]),
                }
                while let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                    let keep = request[..end].windows(8).any(|w| w == b"HTTP/1.1");
                    request.drain(..end + 4);
                    if keep {
                        if stream.write_all(KEEP_ALIVE_ANSWER).is_err() {
                            return;
                        }
                    } else {
                        let _ = stream
                            .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\n");
                        return;
                    }
                }
            }
        });
    }
}

/// Requests answered on one kept-alive connection to `addr` within `duration`.
fn kept_alive_requests(addr: &str, duration: Duration) -> usize {
    let addr: std::net::SocketAddr = addr.parse().expect("socket address");
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return 0;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = stream.set_nodelay(true);
    let deadline = Instant::now() + duration;
    let mut answer = vec![0u8; KEEP_ALIVE_ANSWER.len()];
    let mut done = 0;
    while Instant::now() < deadline {
        if stream
            .write_all(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
            .is_err()
            || stream.read_exact(&mut answer).is_err()
        {
            break;
        }
        done += 1;
    }
    done
}

/// Completed `GET /` requests to `addr` from the client address, one connection each, within
/// `duration`. The client has an address of its own: from the server's address it would be
/// hairpin traffic (masqueraded), which real clients in other pods are not.
fn requests(addr: &str, duration: Duration) -> usize {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let addr: std::net::SocketAddr = addr.parse().expect("socket address");
    let source: std::net::SocketAddr = format!("{CLIENT}:0").parse().expect("client address");
    runtime.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let deadline = Instant::now() + duration;
        let mut done = 0;
        let mut buffer = Vec::with_capacity(1024);
        while Instant::now() < deadline {
            let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
                continue;
            };
            if socket.bind(source).is_err() {
                continue;
            }
            let exchange = async {
                let mut stream = socket.connect(addr).await.ok()?;
                stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await.ok()?;
                buffer.clear();
                stream.read_to_end(&mut buffer).await.ok()?;
                buffer.starts_with(b"HTTP/1.").then_some(())
            };
            if let Ok(Some(())) = tokio::time::timeout(Duration::from_secs(1), exchange).await {
                done += 1;
            }
        }
        done
    })
}

/// Service `i`: ClusterIP 10.96.x.y, one named port, and its slice with two endpoints.
fn objects(i: usize, generation: usize) -> (Arc<Service>, Arc<EndpointSlice>) {
    let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 1, 0)) + i as u32);
    let service: Service = serde_json::from_value(json!({
        "metadata": { "name": format!("svc-{i}"), "namespace": "bench" },
        "spec": { "clusterIP": ip.to_string(), "selector": { "app": format!("a{i}") },
                  "ports": [{ "name": "http", "port": 80, "targetPort": 8080 }] }
    }))
    .expect("service");
    // Service 0 is the one measured for throughput: its endpoint is the real httpd.
    let endpoints = if i == 0 {
        vec![json!({ "addresses": [POD] })]
    } else {
        let first = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 88, 16, 0)) + 2 * i as u32);
        let second = Ipv4Addr::from(u32::from(first) + 1 + (generation % 2) as u32 * 4096);
        vec![
            json!({ "addresses": [first.to_string()] }),
            json!({ "addresses": [second.to_string()] }),
        ]
    };
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": { "name": format!("svc-{i}-x"), "namespace": "bench",
                      "labels": { "kubernetes.io/service-name": format!("svc-{i}") } },
        "addressType": "IPv4",
        "ports": [{ "name": "http", "port": 8080, "protocol": "TCP" }],
        "endpoints": endpoints,
    }))
    .expect("slice");
    (Arc::new(service), Arc::new(slice))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// The bench's network namespaces: the node with the proxy's rules, and two pods.
struct Namespaces {
    node: String,
    client: String,
    server: String,
}

/// The node's address on its pod links (as a CNI bridge's gateway would be).
const GATEWAY: &str = "10.88.0.1";

fn in_ns(ns: &str, args: &[&str]) -> String {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend(args);
    sh(&full)
}

/// Joins pod namespace `pod` to the node by a veth pair: the pod has `ip` and a default route
/// through the node, the node a route to `ip` over its end.
fn plug(node: &str, pod: &str, host_end: &str, ip: &str) {
    sh(&[
        "ip", "-n", node, "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns",
        pod,
    ]);
    in_ns(node, &["ip", "link", "set", host_end, "up"]);
    in_ns(
        node,
        &[
            "ip",
            "addr",
            "add",
            &format!("{GATEWAY}/32"),
            "dev",
            host_end,
        ],
    );
    in_ns(
        node,
        &["ip", "route", "add", &format!("{ip}/32"), "dev", host_end],
    );
    in_ns(pod, &["ip", "link", "set", "lo", "up"]);
    in_ns(pod, &["ip", "link", "set", "eth0", "up"]);
    in_ns(
        pod,
        &["ip", "addr", "add", &format!("{ip}/32"), "dev", "eth0"],
    );
    in_ns(
        pod,
        &[
            "ip",
            "route",
            "add",
            &format!("{GATEWAY}/32"),
            "dev",
            "eth0",
        ],
    );
    in_ns(pod, &["ip", "route", "add", "default", "via", GATEWAY]);
}

async fn bench(namespaces: &Namespaces) {
    let Namespaces {
        node,
        client,
        server,
    } = namespaces;
    in_ns(node, &["ip", "link", "set", "lo", "up"]);
    in_ns(node, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    plug(node, client, "veth-client", CLIENT);
    plug(node, server, "veth-server", POD);
    let inside = |args: &[&str]| in_ns(client, args);
    let exe = std::env::current_exe().expect("own path");
    let exe = exe.to_string_lossy().into_owned();
    let mut httpd = Command::new("ip")
        .args(["netns", "exec", server, &exe, "--server"])
        .arg(format!("{POD}:8080"))
        .spawn()
        .expect("server");

    let host = NetHost {
        netns: Some(node.to_owned()),
    };
    host.enable_route_localnet().await.expect("route_localnet");
    host.ensure_service_route("10.96.0.0/16")
        .await
        .expect("service route");
    let config = RulesConfig {
        pod_cidr: "10.88.0.0/16".into(),
    };
    let count = service_count();
    let (mut services, mut slices): (Vec<_>, Vec<_>) = (0..count).map(|i| objects(i, 0)).unzip();

    let started = Instant::now();
    let ports = model::service_ports(&services, &model::mirrored_slices(&services, &slices, &[]));
    let mut applied = rules::generate(&config, &ports);
    apply(&host, None, &applied).await.expect("first apply");
    let first = started.elapsed();

    // One endpoint changes; the whole sync path runs.
    let mut latencies = Vec::with_capacity(CHANGES);
    for change in 1..=CHANGES {
        let i = 1 + (change * 37) % (count - 1);
        let (service, slice) = objects(i, change);
        services[i] = service;
        slices[i] = slice;
        let started = Instant::now();
        let ports =
            model::service_ports(&services, &model::mirrored_slices(&services, &slices, &[]));
        let desired = rules::generate(&config, &ports);
        apply(&host, Some(&applied), &desired)
            .await
            .expect("incremental apply");
        latencies.push(started.elapsed());
        applied = desired;
    }
    latencies.sort();

    // Throughput: pod IP and ClusterIP alternating, from a client inside the namespace.
    let client_with = |addr: &str, mode: &str| -> usize {
        inside(&[&exe, "--client", addr, mode])
            .trim()
            .parse()
            .expect("request count")
    };
    let client = |addr: &str| client_with(addr, "--new-connections");
    let cluster_ip = format!("{}:80", Ipv4Addr::new(10, 96, 1, 0));
    let pod = format!("{POD}:8080");
    // Warm up (and wait for httpd).
    let mut warm = 0;
    for _ in 0..50 {
        warm = client(&pod);
        if warm > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(warm > 0, "the server never answered");
    let (mut direct, mut through) = (0, 0);
    // Alternating which goes first, so neither always runs on a warmer machine.
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            direct += client(&pod);
            through += client(&cluster_ip);
        } else {
            through += client(&cluster_ip);
            direct += client(&pod);
        }
    }
    let seconds = (ROUND * ROUNDS as u32).as_secs_f64();
    let (direct_rate, through_rate) = (direct as f64 / seconds, through as f64 / seconds);
    let (mut direct_kept, mut through_kept) = (0, 0);
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            direct_kept += client_with(&pod, "--keep-alive");
            through_kept += client_with(&cluster_ip, "--keep-alive");
        } else {
            through_kept += client_with(&cluster_ip, "--keep-alive");
            direct_kept += client_with(&pod, "--keep-alive");
        }
    }
    let (direct_kept, through_kept) = (direct_kept as f64 / seconds, through_kept as f64 / seconds);

    let (rebuild, dns_rate) = dns_bench(&services, &slices).await;

    host.cleanup().await.expect("cleanup");
    let _ = httpd.kill();
    let _ = httpd.wait();

    println!(
        "services: {} (one port, two endpoints each)",
        service_count()
    );
    println!("first full apply: {:.1} ms", first.as_secs_f64() * 1e3);
    println!(
        "sync after one endpoint change ({CHANGES} changes): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (+ 100 ms debounce in the agent)",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    println!(
        "requests/s, new connection each: pod IP {direct_rate:.0}, ClusterIP {through_rate:.0}, ratio {:.2}",
        through_rate / direct_rate
    );
    println!(
        "requests/s, one kept-alive connection: pod IP {direct_kept:.0}, ClusterIP {through_kept:.0}, ratio {:.2}",
        through_kept / direct_kept
    );
    println!(
        "cluster DNS: zone rebuild {:.1} ms; {dns_rate:.0} A answers/s over UDP (one client)",
        rebuild.as_secs_f64() * 1e3
    );
}

/// The zone rebuild time and sequential UDP answers per second.
async fn dns_bench(services: &[Arc<Service>], slices: &[Arc<EndpointSlice>]) -> (Duration, f64) {
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RecordType};
    use tugboat_nodeagent::dns::{self, records::ClusterRecords, server};

    let started = Instant::now();
    let rounds = 20;
    let mut zone = None;
    for _ in 0..rounds {
        zone = Some(ClusterRecords::build(
            "cluster.local",
            services,
            &model::mirrored_slices(services, slices, &[]),
            &[],
        ));
    }
    let rebuild = started.elapsed() / rounds;
    let (_publish, records) = tokio::sync::watch::channel(Arc::new(zone.expect("a zone")));
    let (udp, tcp) = dns::bind("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    let address = udp.local_addr().expect("address");
    let cancel = tokio_util::sync::CancellationToken::new();
    let answerer = server::Answerer {
        records,
        upstreams: Vec::new(),
    };
    let serving = tokio::spawn(server::serve(udp, tcp, answerer, cancel.clone()));
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("client");
    client.connect(address).await.expect("connect");
    let mut buffer = vec![0u8; 4096];
    let deadline = Instant::now() + ROUND;
    let mut answered = 0usize;
    while Instant::now() < deadline {
        let mut query = Message::query();
        let name = format!("svc-{}.bench.svc.cluster.local.", answered % services.len());
        query.add_query(Query::query(
            Name::from_ascii(&name).expect("name"),
            RecordType::A,
        ));
        client
            .send(&query.to_vec().expect("encode"))
            .await
            .expect("send");
        let received = tokio::time::timeout(Duration::from_secs(1), client.recv(&mut buffer))
            .await
            .expect("an answer")
            .expect("recv");
        let answer = Message::from_vec(&buffer[..received]).expect("decode");
        assert_eq!(answer.answers.len(), 1, "{name}");
        answered += 1;
    }
    cancel.cancel();
    let _ = serving.await;
    (rebuild, answered as f64 / ROUND.as_secs_f64())
}
