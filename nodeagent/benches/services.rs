//! Issue 9's Service benchmark, inside a network namespace this bench creates and removes (no
//! traffic leaves it):
//!
//! 1. Rule-sync latency with 1,000 Services: one endpoint changes, and the proxy's sync path
//!    (Services and EndpointSlices → model → rules → `iptables-restore --noflush` of the
//!    changed chains) runs; p50/p99/max over many changes. The proxy's 100 ms debounce
//!    comes on top in a running agent.
//! 2. Requests per second to a minimal HTTP server through the ClusterIP versus straight to the pod
//!    IP, in the same run, alternating, one new connection per request (so every request
//!    pays for the DNAT), with the 1,000 Services' rules in place, and the latency distribution
//!    of those connections. As on a node: the rules are in a "node" namespace, and the clients
//!    and the server are "pods", namespaces of their own joined to it by veth pairs, so both
//!    paths cross the node's forwarding and conntrack and differ by the proxy's rules alone.
//!    Each path has its own client pod. One client alternating between the two addresses of
//!    the same server measures something else, shown last: after the DNAT both paths are one
//!    4-tuple at the server, whose TIME_WAIT then rejects the other path's SYNs (the client's
//!    timestamp offset is per destination address) and each costs a SYN retransmit
//!    (`scripts/repro-dnat-timewait.sh` reproduces it with one DNAT rule).
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
/// The address of the client pod that talks to the pod IP.
const CLIENT: &str = "10.88.7.3";
/// The address of the client pod that talks to the ClusterIP.
const SERVICE_CLIENT: &str = "10.88.7.4";
/// How long one request on a new connection may take: above the 1 s of a SYN retransmit, so
/// such a stall shows in the distribution instead of as a failure.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(3);
const ROUND: Duration = Duration::from_secs(3);
const ROUNDS: usize = 4;
/// New connections are measured in more, shorter rounds, so the machine's other load (builds)
/// falls on both paths alike.
const NEW_CONNECTION_ROUND: Duration = Duration::from_secs(1);
const NEW_CONNECTION_ROUNDS: usize = 10;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--client") {
        // The client half, run inside a client pod: requests to `addr` for one round.
        let addr = args.get(i + 1).cloned().unwrap_or_default();
        if args.iter().any(|a| a == "--keep-alive") {
            println!("{}", kept_alive_requests(&addr, ROUND));
        } else {
            let from = args
                .iter()
                .position(|a| a == "--from")
                .and_then(|i| args.get(i + 1))
                .map_or(CLIENT, String::as_str);
            print!("{}", requests(&addr, from, NEW_CONNECTION_ROUND).to_lines());
        }
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
        service_client: format!("{name}-svc-client"),
        server: format!("{name}-server"),
        node: name,
    };
    for ns in namespaces.all() {
        sh(&["ip", "netns", "add", ns]);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = std::panic::catch_unwind(|| runtime.block_on(bench(&namespaces)));
    for ns in namespaces.all() {
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

/// What one client saw of its new connections: how long each connect and each whole request
/// (socket, bind, connect, send, read the answer to the end) took, and how many failed.
#[derive(Default)]
struct Connections {
    connect: Vec<Duration>,
    request: Vec<Duration>,
    failed: usize,
    /// SYN retransmits counted in the client's namespace meanwhile (the bench fills this in).
    syn_retransmits: u64,
}

impl Connections {
    /// One `connect_us request_us` line per completed request, then `failed N` (the client
    /// half prints this, the bench reads it back).
    fn to_lines(&self) -> String {
        let mut lines = String::new();
        for (connect, request) in self.connect.iter().zip(&self.request) {
            lines.push_str(&format!(
                "{} {}\n",
                connect.as_micros(),
                request.as_micros()
            ));
        }
        lines.push_str(&format!("failed {}\n", self.failed));
        lines
    }

    fn add_lines(&mut self, lines: &str) {
        for line in lines.lines() {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("failed"), Some(n)) => self.failed += n.parse::<usize>().expect("a count"),
                (Some(connect), Some(request)) => {
                    let micros = |w: &str| Duration::from_micros(w.parse().expect("microseconds"));
                    self.connect.push(micros(connect));
                    self.request.push(micros(request));
                }
                _ => panic!("unexpected client output: {line}"),
            }
        }
    }

    fn completed(&self) -> usize {
        self.request.len()
    }

    /// `mean … p50 … p99 … p99.9 … max … ms, N > 100 ms, N > 900 ms` of one of the series.
    fn distribution(series: &[Duration]) -> String {
        let mut sorted = series.to_vec();
        sorted.sort();
        if sorted.is_empty() {
            return "none".into();
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let over = |limit: u64| {
            sorted
                .iter()
                .filter(|d| **d > Duration::from_millis(limit))
                .count()
        };
        let mean = sorted.iter().sum::<Duration>() / sorted.len() as u32;
        format!(
            "mean {:.3} ms, p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.1} ms, {} > 100 ms, {} > 900 ms",
            ms(mean),
            ms(percentile(&sorted, 0.5)),
            ms(percentile(&sorted, 0.99)),
            ms(percentile(&sorted, 0.999)),
            ms(sorted[sorted.len() - 1]),
            over(100),
            over(900),
        )
    }

    fn report(&self, path: &str, seconds: f64) {
        println!(
            "  {path}: {} requests, {:.0}/s, {} failed, {} SYN retransmits",
            self.completed(),
            self.completed() as f64 / seconds,
            self.failed,
            self.syn_retransmits
        );
        println!("    connect: {}", Self::distribution(&self.connect));
        println!("    request: {}", Self::distribution(&self.request));
    }
}

/// `GET /` requests to `addr` from the client address `from`, one new connection each, within
/// `duration`. The client has an address of its own: from the server's address it would be
/// hairpin traffic (masqueraded), which real clients in other pods are not.
fn requests(addr: &str, from: &str, duration: Duration) -> Connections {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let addr: std::net::SocketAddr = addr.parse().expect("socket address");
    let source: std::net::SocketAddr = format!("{from}:0").parse().expect("client address");
    runtime.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let deadline = Instant::now() + duration;
        let mut seen = Connections::default();
        let mut buffer = Vec::with_capacity(1024);
        while Instant::now() < deadline {
            // The whole cost of a connection as the client sees it, from its socket on.
            let started = Instant::now();
            let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
                seen.failed += 1;
                continue;
            };
            if socket.bind(source).is_err() {
                seen.failed += 1;
                continue;
            }
            let mut connected = None;
            let exchange = async {
                let connecting = Instant::now();
                let mut stream = socket.connect(addr).await.ok()?;
                connected = Some(connecting.elapsed());
                stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await.ok()?;
                buffer.clear();
                stream.read_to_end(&mut buffer).await.ok()?;
                buffer.starts_with(b"HTTP/1.").then_some(())
            };
            let answered = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await;
            match (answered, connected) {
                (Ok(Some(())), Some(connect)) => {
                    seen.connect.push(connect);
                    seen.request.push(started.elapsed());
                }
                _ => seen.failed += 1,
            }
        }
        seen
    })
}

/// The `TcpExt` counter `name` of network namespace `ns` (as `nstat` shows it).
fn tcp_ext_counter(ns: &str, name: &str) -> u64 {
    let netstat = in_ns(ns, &["cat", "/proc/net/netstat"]);
    let mut lines = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// The ClusterIP of Service `i`.
fn cluster_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 1, 0)) + i as u32)
}

/// The Service measured for throughput: the one whose rule comes last in `TUGBOAT-SERVICES`
/// (ordered by the port's id, `bench/svc-<i>:http`, as bytes). A new connection to its ClusterIP
/// then walks every Service's rule, as one to the pod IP does; measuring the first one instead
/// would credit the ClusterIP with the pod IP's walk of the whole list.
fn measured_service(count: usize) -> usize {
    (0..count)
        .max_by_key(|i| format!("bench/svc-{i}:http"))
        .unwrap_or(0)
}

/// Service `i`: ClusterIP 10.96.x.y, one named port, and its slice with two endpoints (the
/// measured one: the real server).
fn objects(i: usize, generation: usize, measured: usize) -> (Arc<Service>, Arc<EndpointSlice>) {
    let ip = cluster_ip(i);
    let service: Service = serde_json::from_value(json!({
        "metadata": { "name": format!("svc-{i}"), "namespace": "bench" },
        "spec": { "clusterIP": ip.to_string(), "selector": { "app": format!("a{i}") },
                  "ports": [{ "name": "http", "port": 80, "targetPort": 8080 }] }
    }))
    .expect("service");
    let endpoints = if i == measured {
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

/// The bench's network namespaces: the node with the proxy's rules, and three pods: the
/// server, the client of its pod IP and the client of its ClusterIP.
struct Namespaces {
    node: String,
    client: String,
    service_client: String,
    server: String,
}

impl Namespaces {
    fn all(&self) -> [&String; 4] {
        [&self.node, &self.client, &self.service_client, &self.server]
    }
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
        service_client,
        server,
    } = namespaces;
    in_ns(node, &["ip", "link", "set", "lo", "up"]);
    in_ns(node, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    plug(node, client, "veth-client", CLIENT);
    plug(node, service_client, "veth-svc-client", SERVICE_CLIENT);
    plug(node, server, "veth-server", POD);
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
    let measured = measured_service(count);
    let (mut services, mut slices): (Vec<_>, Vec<_>) =
        (0..count).map(|i| objects(i, 0, measured)).unzip();

    let started = Instant::now();
    let ports = model::service_ports(&services, &model::mirrored_slices(&services, &slices, &[]));
    let mut applied = rules::generate(&config, &ports);
    apply(&host, None, &applied).await.expect("first apply");
    let first = started.elapsed();
    let last_service_rule = applied
        .tables
        .get("nat")
        .and_then(|chains| chains.get(rules::SERVICES_CHAIN))
        .and_then(|rules| rules.iter().rfind(|rule| rule.contains(" -d ")))
        .cloned()
        .unwrap_or_default();
    assert!(
        last_service_rule.contains(&format!("-d {}/32", cluster_ip(measured))),
        "the measured Service's rule is not the last: {last_service_rule}"
    );
    let others: Vec<usize> = (0..count).filter(|i| *i != measured).collect();

    // One endpoint changes; the whole sync path runs.
    let mut latencies = Vec::with_capacity(CHANGES);
    for change in 1..=CHANGES {
        let i = others[(change * 37) % others.len()];
        let (service, slice) = objects(i, change, measured);
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

    // Throughput and latency: pod IP and ClusterIP alternating, each from its own client pod.
    let service_addr = format!("{}:80", cluster_ip(measured));
    let pod = format!("{POD}:8080");
    let direct_client = (client.as_str(), CLIENT);
    let through_client = (service_client.as_str(), SERVICE_CLIENT);
    // One round of new connections from `(namespace, address)` to `addr`, added to `seen`.
    let new_connections = |seen: &mut Connections, (ns, from): (&str, &str), addr: &str| {
        let before = tcp_ext_counter(ns, "TCPSynRetrans");
        seen.add_lines(&in_ns(ns, &[&exe, "--client", addr, "--from", from]));
        seen.syn_retransmits += tcp_ext_counter(ns, "TCPSynRetrans").saturating_sub(before);
    };
    let kept_alive = |ns: &str, addr: &str| -> usize {
        in_ns(ns, &[&exe, "--client", addr, "--keep-alive"])
            .trim()
            .parse()
            .expect("request count")
    };
    // Warm up (and wait for httpd).
    let mut warm = Connections::default();
    for _ in 0..50 {
        new_connections(&mut warm, direct_client, &pod);
        if warm.completed() > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(warm.completed() > 0, "the server never answered");
    // Alternating which goes first, so neither always runs on a warmer machine.
    let alternate = |direct: &mut Connections,
                     through: &mut Connections,
                     direct_from: (&str, &str),
                     through_from: (&str, &str)| {
        for round in 0..NEW_CONNECTION_ROUNDS {
            if round % 2 == 0 {
                new_connections(direct, direct_from, &pod);
                new_connections(through, through_from, &service_addr);
            } else {
                new_connections(through, through_from, &service_addr);
                new_connections(direct, direct_from, &pod);
            }
        }
    };
    let (mut direct, mut through) = (Connections::default(), Connections::default());
    alternate(&mut direct, &mut through, direct_client, through_client);
    let new_connection_seconds =
        (NEW_CONNECTION_ROUND * NEW_CONNECTION_ROUNDS as u32).as_secs_f64();
    let seconds = (ROUND * ROUNDS as u32).as_secs_f64();
    let (mut direct_kept, mut through_kept) = (0, 0);
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            direct_kept += kept_alive(client, &pod);
            through_kept += kept_alive(service_client, &service_addr);
        } else {
            through_kept += kept_alive(service_client, &service_addr);
            direct_kept += kept_alive(client, &pod);
        }
    }
    let (direct_kept, through_kept) = (direct_kept as f64 / seconds, through_kept as f64 / seconds);
    // Last, as it leaves the server's TIME_WAITs crossed: one client pod alternating between
    // both addresses of the same server.
    let (mut mixed_direct, mut mixed_through) = (Connections::default(), Connections::default());
    alternate(
        &mut mixed_direct,
        &mut mixed_through,
        direct_client,
        direct_client,
    );

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
    let rate = |seen: &Connections| seen.completed() as f64 / new_connection_seconds;
    println!(
        "requests/s, new connection each (a client pod per path): pod IP {:.0}, ClusterIP {:.0}, ratio {:.2}",
        rate(&direct),
        rate(&through),
        rate(&through) / rate(&direct)
    );
    direct.report("pod IP", new_connection_seconds);
    through.report("ClusterIP", new_connection_seconds);
    println!(
        "requests/s, one kept-alive connection: pod IP {direct_kept:.0}, ClusterIP {through_kept:.0}, ratio {:.2}",
        through_kept / direct_kept
    );
    println!(
        "requests/s, new connection each, ONE client pod alternating between the pod IP and the ClusterIP (ports reused across paths): pod IP {:.0}, ClusterIP {:.0}, ratio {:.2}",
        rate(&mixed_direct),
        rate(&mixed_through),
        rate(&mixed_through) / rate(&mixed_direct)
    );
    mixed_direct.report("pod IP", new_connection_seconds);
    mixed_through.report("ClusterIP", new_connection_seconds);
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
