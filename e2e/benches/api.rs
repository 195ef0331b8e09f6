//! B5 and B8: the API server on the embedded store, measured from the outside.
//!
//! `cargo bench -p tugboat-e2e --bench api` (release) starts the API server in process on a free
//! loopback port (`StoreConfig::Embedded` in a temporary dir) and, in one run:
//!
//! - B5: 16 concurrent kube-rs clients create ConfigMaps, then get them (p50/p99, ops/s); the
//!   raw embedded store's create rate with the same concurrency and value size, for the ratio.
//! - B8: `kubectl get pods -A` (the real kubectl, default flags, server-side table) over 10,000
//!   Pending pods, end to end; 1,000 raw HTTPS watch streams while ConfigMaps are created at 500/s
//!   (delivery latency: from just before the create is sent to the event's arrival).
//!
//! Set `TUGBOAT_BENCH_QUICK=1` for a short smoke run (smaller counts).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, PostParams};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;
use tugboat_apiserver::{ApiServerConfig, Running, StoreConfig};
use tugboat_store::Store;
use tugboat_store::embedded::{EmbeddedConfig, EmbeddedStore};

const CLIENTS: usize = 16;
const VALUE_BYTES: usize = 256;

struct Scale {
    configmaps: usize,
    pods: usize,
    watchers: usize,
    events_per_sec: u64,
    watch_seconds: u64,
}

// === impl Sample ===

struct Sample {
    ops: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Sample {
    fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        percentile(&self.latencies, p)
    }
}

fn percentile(latencies: &[Duration], p: f64) -> Duration {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn value() -> String {
    "x".repeat(VALUE_BYTES)
}

fn configmap(name: &str, data: (&str, String)) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        data: Some([(data.0.to_owned(), data.1)].into()),
        ..ConfigMap::default()
    }
}

async fn create_namespace(client: &kube::Client, name: &str) {
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
}

fn clients(running: &Running, n: usize) -> Vec<kube::Client> {
    (0..n)
        .map(|_| {
            tugboat_testkit::kube::client(&running.url, &running.ca_pem, &running.admin_token)
                .unwrap()
        })
        .collect()
}

// === B5 ===

/// `total` ConfigMaps created by [`CLIENTS`] clients, then each read back.
async fn b5(running: &Running, total: usize) -> (Sample, Sample, usize) {
    let clients = clients(running, CLIENTS);
    create_namespace(&clients[0], "b5").await;
    let per_client = total / CLIENTS;
    // The stored size of one ConfigMap, for the raw store's comparison.
    let stored_bytes = Arc::new(AtomicUsize::new(0));

    let start = Instant::now();
    let mut tasks = Vec::new();
    for (c, client) in clients.iter().enumerate() {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "b5");
        let stored_bytes = Arc::clone(&stored_bytes);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let cm = configmap(&format!("cm-{c:02}-{i:06}"), ("value", value()));
                let t = Instant::now();
                let created = api.create(&PostParams::default(), &cm).await.unwrap();
                latencies.push(t.elapsed());
                if i == 0 {
                    let bytes = serde_json::to_vec(&created).unwrap().len();
                    stored_bytes.store(bytes, Ordering::Relaxed);
                }
            }
            latencies
        }));
    }
    let creates = collect(tasks, start).await;

    let start = Instant::now();
    let mut tasks = Vec::new();
    for (c, client) in clients.iter().enumerate() {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "b5");
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let t = Instant::now();
                api.get(&format!("cm-{c:02}-{i:06}")).await.unwrap();
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let gets = collect(tasks, start).await;
    (creates, gets, stored_bytes.load(Ordering::Relaxed))
}

async fn collect(tasks: Vec<tokio::task::JoinHandle<Vec<Duration>>>, start: Instant) -> Sample {
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    Sample {
        ops: latencies.len(),
        elapsed: start.elapsed(),
        latencies,
    }
}

/// The raw embedded store: `total` creates of `value_bytes` from [`CLIENTS`] writers.
async fn raw_store_creates(dir: &std::path::Path, total: usize, value_bytes: usize) -> Sample {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(EmbeddedConfig::new(dir)).unwrap());
    let per_writer = total / CLIENTS;
    let value = Bytes::from(vec![b'x'; value_bytes]);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..CLIENTS {
        let store = Arc::clone(&store);
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_writer);
            for i in 0..per_writer {
                let key = format!("/registry/configmaps/raw/cm-{w:02}-{i:06}");
                let t = Instant::now();
                store.create(&key, value.clone()).await.unwrap();
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    collect(tasks, start).await
}

// === B8: list ===

/// `total` Pending pods over 10 namespaces, created by 20 clients.
async fn create_pods(running: &Running, total: usize) -> Duration {
    let clients = clients(running, 20);
    for n in 0..10 {
        create_namespace(&clients[0], &format!("b8-{n}")).await;
    }
    let per_client = total / clients.len();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (c, client) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for i in 0..per_client {
                let n = (c * per_client + i) % 10;
                let api: Api<Pod> = Api::namespaced(client.clone(), &format!("b8-{n}"));
                let pod = Pod {
                    metadata: ObjectMeta {
                        name: Some(format!("pod-{c:02}-{i:06}")),
                        labels: Some([("app".to_owned(), format!("app-{}", i % 50))].into()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "main".into(),
                            image: Some("busybox".into()),
                            ..Container::default()
                        }],
                        ..PodSpec::default()
                    }),
                    ..Pod::default()
                };
                api.create(&PostParams::default(), &pod).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    start.elapsed()
}

/// `kubectl get pods -A`, end to end, `runs` times after one warm-up (discovery cache).
async fn kubectl_get_pods(running: &Running, cache: &std::path::Path, pods: usize) -> Sample {
    let kubectl =
        tugboat_e2e::Kubectl::new(running.kubeconfig.clone(), cache.to_path_buf()).unwrap();
    tokio::task::spawn_blocking(move || {
        let warm = kubectl.ok(&["get", "pods", "-A"]).unwrap();
        assert_eq!(
            warm.lines().count(),
            pods + 1,
            "header plus one row per pod"
        );
        let mut latencies = Vec::new();
        let start = Instant::now();
        for _ in 0..5 {
            let t = Instant::now();
            let out = kubectl.ok(&["get", "pods", "-A"]).unwrap();
            latencies.push(t.elapsed());
            assert_eq!(out.lines().count(), pods + 1);
        }
        Sample {
            ops: latencies.len(),
            elapsed: start.elapsed(),
            latencies,
        }
    })
    .await
    .unwrap()
}

/// The requests behind `kubectl get pods -A` made back to back by one kube-rs client: pages of
/// 500 rows as server-side tables, following `continue`. This is the server's share of the
/// kubectl figure; kubectl adds its own client-side rate limit and printing.
async fn server_table_list(running: &Running, pods: usize) -> Sample {
    let client = clients(running, 1).remove(0);
    let mut latencies = Vec::new();
    let start = Instant::now();
    for _ in 0..5 {
        let t = Instant::now();
        let mut rows = 0;
        let mut next = String::new();
        loop {
            let mut uri = "/api/v1/pods?limit=500".to_owned();
            if !next.is_empty() {
                uri.push_str("&continue=");
                uri.push_str(&next);
            }
            let request = http::Request::get(uri)
                .header(
                    "accept",
                    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
                )
                .body(Vec::new())
                .unwrap();
            let text = client.request_text(request).await.unwrap();
            let page: serde_json::Value = serde_json::from_str(&text).unwrap();
            rows += page["rows"].as_array().map_or(0, Vec::len);
            next = page["metadata"]["continue"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if next.is_empty() {
                break;
            }
        }
        latencies.push(t.elapsed());
        assert_eq!(rows, pods, "one row per pod");
    }
    Sample {
        ops: latencies.len(),
        elapsed: start.elapsed(),
        latencies,
    }
}

// === B8: watch ===

const STAMP: &[u8] = b"\"sent-ns\":\"";

/// One raw HTTPS watch: HTTP/1.1, chunked, one JSON event per line. Returns the delivery
/// latency of each event carrying a stamp, stopping after `expected` events or at `deadline`.
async fn watcher(
    running: Arc<WatchTarget>,
    selector: String,
    ready: Arc<AtomicUsize>,
    origin: Instant,
    expected: usize,
    deadline: Instant,
) -> Vec<Duration> {
    let tcp = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    let server_name =
        rustls::pki_types::ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into());
    let mut tls = running
        .connector
        .connect(server_name, tcp)
        .await
        .expect("TLS handshake");
    let request = format!(
        "GET /api/v1/namespaces/{}/configmaps?watch=true&resourceVersion={}{selector} HTTP/1.1\r\n\
         Host: {}\r\nAuthorization: Bearer {}\r\nAccept: application/json\r\n\r\n",
        running.namespace, running.resource_version, running.addr, running.token
    );
    tls.write_all(request.as_bytes()).await.unwrap();

    let mut raw = Vec::with_capacity(64 * 1024);
    let mut body = Vec::with_capacity(64 * 1024);
    let mut headers_done = false;
    let mut latencies = Vec::with_capacity(expected);
    let mut buf = vec![0u8; 64 * 1024];
    while latencies.len() < expected {
        let n = match tokio::time::timeout_at(
            tokio::time::Instant::from_std(deadline),
            tls.read(&mut buf),
        )
        .await
        {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => n,
        };
        let now = origin.elapsed();
        raw.extend_from_slice(&buf[..n]);
        if !headers_done {
            let Some(end) = find(&raw, b"\r\n\r\n") else {
                continue;
            };
            assert!(
                raw.starts_with(b"HTTP/1.1 200"),
                "{}",
                String::from_utf8_lossy(&raw[..end])
            );
            raw.drain(..end + 4);
            headers_done = true;
            ready.fetch_add(1, Ordering::SeqCst);
        }
        dechunk(&mut raw, &mut body);
        while let Some(newline) = body.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = body.drain(..=newline).collect();
            if let Some(at) = find(&line, STAMP) {
                let digits = &line[at + STAMP.len()..];
                let end = digits.iter().position(|b| !b.is_ascii_digit()).unwrap_or(0);
                let sent: u64 = std::str::from_utf8(&digits[..end])
                    .unwrap()
                    .parse()
                    .unwrap();
                latencies.push(now.saturating_sub(Duration::from_nanos(sent)));
            }
        }
    }
    latencies
}

/// Move complete chunks of a chunked body from `raw` to `body`.
fn dechunk(raw: &mut Vec<u8>, body: &mut Vec<u8>) {
    let mut at = 0;
    while let Some(line_end) = find(&raw[at..], b"\r\n") {
        let size_text = std::str::from_utf8(&raw[at..at + line_end]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size {size_text:?}"));
        let start = at + line_end + 2;
        if raw.len() < start + size + 2 {
            break;
        }
        body.extend_from_slice(&raw[start..start + size]);
        at = start + size + 2;
    }
    raw.drain(..at);
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

struct WatchTarget {
    addr: std::net::SocketAddr,
    namespace: &'static str,
    token: String,
    resource_version: String,
    connector: tokio_rustls::TlsConnector,
}

struct WatchResult {
    delivery: Sample,
    expected: usize,
    write_rate: f64,
    connect: Duration,
}

/// Who receives each event: every watcher (a broadcast, 1,000 deliveries per write), or one
/// watcher picked by a label selector (as kubelets each watch their own pods).
#[derive(Clone, Copy, PartialEq)]
enum Fanout {
    Everyone,
    OneWatcherEach,
}

async fn b8_watch(running: &Running, scale: &Scale, fanout: Fanout) -> WatchResult {
    let namespace = match fanout {
        Fanout::Everyone => "b8w",
        Fanout::OneWatcherEach => "b8s",
    };
    let client = clients(running, 1).remove(0);
    create_namespace(&client, namespace).await;
    let list = Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut running.ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let target = Arc::new(WatchTarget {
        addr: running.addr,
        namespace,
        token: running.admin_token.clone(),
        resource_version: list.metadata.resource_version.unwrap_or_default(),
        connector: tokio_rustls::TlsConnector::from(Arc::new(tls)),
    });

    let events = (scale.events_per_sec * scale.watch_seconds) as usize;
    let origin = Instant::now();
    let deadline = origin + Duration::from_secs(scale.watch_seconds + 120);
    let ready = Arc::new(AtomicUsize::new(0));
    let mut watchers = Vec::new();
    let connect_start = Instant::now();
    let (selector_of, per_watcher): (fn(usize) -> String, usize) = match fanout {
        Fanout::Everyone => (|_| String::new(), events / CLIENTS * CLIENTS),
        Fanout::OneWatcherEach => (
            |n| format!("&labelSelector=watcher%3D{n}"),
            events / CLIENTS * CLIENTS / scale.watchers,
        ),
    };
    for n in 0..scale.watchers {
        watchers.push(tokio::spawn(watcher(
            Arc::clone(&target),
            selector_of(n),
            Arc::clone(&ready),
            origin,
            per_watcher,
            deadline,
        )));
    }
    let ready_deadline = Instant::now() + Duration::from_secs(60);
    while ready.load(Ordering::SeqCst) < scale.watchers && Instant::now() < ready_deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        ready.load(Ordering::SeqCst),
        scale.watchers,
        "not every watch started"
    );
    let connect = connect_start.elapsed();

    // The writer: `events` creates at `events_per_sec`, from 16 clients.
    let writers = clients(running, CLIENTS);
    let interval = Duration::from_secs_f64(CLIENTS as f64 / scale.events_per_sec as f64);
    let per_writer = events / CLIENTS;
    let write_start = Instant::now();
    let mut tasks = Vec::new();
    let watcher_count = scale.watchers;
    for (w, client) in writers.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let api: Api<ConfigMap> = Api::namespaced(client, namespace);
            let offset = interval.mul_f64(w as f64 / CLIENTS as f64);
            let mut ticker =
                tokio::time::interval_at(tokio::time::Instant::now() + offset, interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for i in 0..per_writer {
                ticker.tick().await;
                let sent = origin.elapsed().as_nanos().to_string();
                let mut cm = configmap(&format!("w-{w:02}-{i:06}"), ("sent-ns", sent));
                // Round robin over the watchers, so each gets the same share.
                let receiver = (i * CLIENTS + w) % watcher_count;
                cm.metadata.labels = Some([("watcher".to_owned(), receiver.to_string())].into());
                api.create(&PostParams::default(), &cm).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let write_rate = (per_writer * CLIENTS) as f64 / write_start.elapsed().as_secs_f64();
    let mut latencies = Vec::with_capacity(events * scale.watchers);
    for watcher in watchers {
        latencies.extend(watcher.await.unwrap());
    }
    WatchResult {
        delivery: Sample {
            ops: latencies.len(),
            elapsed: write_start.elapsed(),
            latencies,
        },
        expected: match fanout {
            Fanout::Everyone => per_writer * CLIENTS * scale.watchers,
            // Round robin leaves some watchers one event more; each counts its first `per_watcher`.
            Fanout::OneWatcherEach => per_watcher * scale.watchers,
        },
        write_rate,
        connect,
    }
}

fn main() {
    let quick = std::env::var_os("TUGBOAT_BENCH_QUICK").is_some();
    let scale = if quick {
        Scale {
            configmaps: 800,
            pods: 1_000,
            watchers: 100,
            events_per_sec: 500,
            watch_seconds: 2,
        }
    } else {
        Scale {
            configmaps: 8_000,
            pods: 10_000,
            watchers: 1_000,
            events_per_sec: 500,
            watch_seconds: 10,
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(&scale));
}

async fn run(scale: &Scale) {
    let dir = tempfile::Builder::new()
        .prefix("tugboat-bench-api-")
        .tempdir()
        .unwrap();
    let mut config = ApiServerConfig::new(dir.path().join("data"));
    config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.store = StoreConfig::Embedded;
    let shutdown = CancellationToken::new();
    let running = tugboat_apiserver::start(config, shutdown.clone())
        .await
        .unwrap();
    println!("API server on {} (embedded store)", running.url);

    let (creates, gets, stored_bytes) = b5(&running, scale.configmaps).await;
    let raw = raw_store_creates(&dir.path().join("raw"), scale.configmaps, stored_bytes).await;

    let pod_creation = create_pods(&running, scale.pods).await;
    let list = kubectl_get_pods(&running, &dir.path().join("kubectl-cache"), scale.pods).await;
    let server_list = server_table_list(&running, scale.pods).await;

    let watch = b8_watch(&running, scale, Fanout::Everyone).await;
    let selective = b8_watch(&running, scale, Fanout::OneWatcherEach).await;

    println!();
    println!("| workload | ops/s | p50 | p99 | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| B5 create ConfigMap, {CLIENTS} kube-rs clients ({} objects) | {:.0} | {} | {} | p99 < 100 ms at ≥ 500/s |",
        creates.ops,
        creates.ops_per_sec(),
        ms(creates.percentile(0.5)),
        ms(creates.percentile(0.99)),
    );
    println!(
        "| B5 get ConfigMap, {CLIENTS} kube-rs clients | {:.0} | {} | {} | |",
        gets.ops_per_sec(),
        ms(gets.percentile(0.5)),
        ms(gets.percentile(0.99)),
    );
    println!(
        "| B5 raw embedded store create, {CLIENTS} writers, {stored_bytes} B values | {:.0} | {} | {} | |",
        raw.ops_per_sec(),
        ms(raw.percentile(0.5)),
        ms(raw.percentile(0.99)),
    );
    println!(
        "| B8 create {} pods, 20 kube-rs clients | {:.0} | | | |",
        scale.pods,
        scale.pods as f64 / pod_creation.as_secs_f64(),
    );
    println!(
        "| B8 `kubectl get pods -A`, {} pods, end to end ({} runs) | | {} | max {} | < 1 s |",
        scale.pods,
        list.ops,
        ms(list.percentile(0.5)),
        ms(list.percentile(1.0)),
    );
    println!(
        "| B8 the same {} pods as 500-row table pages, one kube-rs client, back to back (server side, {} runs) | | {} | max {} | < 1 s |",
        scale.pods,
        server_list.ops,
        ms(server_list.percentile(0.5)),
        ms(server_list.percentile(1.0)),
    );
    println!(
        "| B8 watch delivery, {} watchers, creates at {:.0}/s ({} of {} events delivered) | {:.0} | {} | {} | p99 < 100 ms |",
        scale.watchers,
        watch.write_rate,
        watch.delivery.ops,
        watch.expected,
        watch.delivery.ops_per_sec(),
        ms(watch.delivery.percentile(0.5)),
        ms(watch.delivery.percentile(0.99)),
    );
    println!(
        "| B8 watch delivery, {} watchers each selecting its own share by label, creates at {:.0}/s ({} of {} events delivered) | {:.0} | {} | {} | p99 < 100 ms |",
        scale.watchers,
        selective.write_rate,
        selective.delivery.ops,
        selective.expected,
        selective.delivery.ops_per_sec(),
        ms(selective.delivery.percentile(0.5)),
        ms(selective.delivery.percentile(0.99)),
    );
    println!();
    println!(
        "API/raw store create rate: {:.2}x ({:.0} vs {:.0} creates/s)",
        creates.ops_per_sec() / raw.ops_per_sec(),
        creates.ops_per_sec(),
        raw.ops_per_sec()
    );
    println!(
        "{} watches connected in {}",
        scale.watchers,
        ms(watch.connect)
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), running.stopped())
        .await
        .expect("the server did not stop");
}
