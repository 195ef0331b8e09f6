//! B1: the embedded store against a freshly spawned Debian etcd, same workload, same run.
//!
//! `make bench` (or `cargo bench -p tugboat-store --bench store`) prints a table with ops/s,
//! p50 and p99 for both and the ratio embedded/etcd. Both stores fsync every acknowledged write.
//! Set `TUGBOAT_BENCH_QUICK=1` for a short smoke run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use tugboat_store::embedded::{EmbeddedConfig, EmbeddedStore};
use tugboat_store::etcd::EtcdStore;
use tugboat_store::{ListOptions, Store};
use tugboat_testkit::etcd::EtcdProcess;

const VALUE_BYTES: usize = 256;

/// Latencies of one workload on one store.
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
        let mut sorted = self.latencies.clone();
        sorted.sort();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[index]
    }
}

struct Scale {
    serial_puts: usize,
    concurrent_puts: usize,
    list_keys: usize,
    watch_events: usize,
    paced_seconds: u64,
}

fn value() -> Bytes {
    Bytes::from(vec![b'x'; VALUE_BYTES])
}

/// `total` puts of fresh keys from `writers` concurrent clients.
async fn puts(store: &Arc<dyn Store>, prefix: &str, writers: usize, total: usize) -> Sample {
    let per_writer = total / writers;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = Arc::clone(store);
        let prefix = prefix.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_writer);
            for i in 0..per_writer {
                let key = format!("{prefix}/{w:03}/{i:07}");
                let t = Instant::now();
                store.create(&key, value()).await.unwrap();
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
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

/// Puts at a fixed rate (`rate` per second for `seconds`), spread over 32 clients.
async fn paced_puts(store: &Arc<dyn Store>, prefix: &str, rate: u64, seconds: u64) -> Sample {
    let clients = 32u64;
    let interval = Duration::from_secs_f64(clients as f64 / rate as f64);
    let per_client = rate * seconds / clients;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let store = Arc::clone(store);
        let prefix = prefix.to_owned();
        tasks.push(tokio::spawn(async move {
            let offset = interval.mul_f64(c as f64 / clients as f64);
            let mut ticker =
                tokio::time::interval_at(tokio::time::Instant::now() + offset, interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut latencies = Vec::new();
            for i in 0..per_client {
                let scheduled = ticker.tick().await;
                store
                    .create(&format!("{prefix}/{c:03}/{i:07}"), value())
                    .await
                    .unwrap();
                // Latency from when the write was due, so a stalled store cannot hide its queue.
                latencies.push(scheduled.elapsed());
            }
            latencies
        }));
    }
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

async fn list_all(store: &Arc<dyn Store>, keys: usize) -> Sample {
    puts(store, "/list", 50, keys).await;
    let mut latencies = Vec::new();
    let start = Instant::now();
    for _ in 0..10 {
        let t = Instant::now();
        let list = store.list("/list/", ListOptions::default()).await.unwrap();
        latencies.push(t.elapsed());
        assert_eq!(list.items.len(), keys / 50 * 50);
    }
    Sample {
        ops: latencies.len(),
        elapsed: start.elapsed(),
        latencies,
    }
}

/// One watcher; a writer puts `events` values carrying their send time; latency is the time
/// from just before the put to the event's arrival.
async fn watch_delivery(store: &Arc<dyn Store>, events: usize) -> Sample {
    let origin = Instant::now();
    let from = store.current_revision().await.unwrap();
    let mut watch = store.watch("/watch/", from).await.unwrap();
    let writer = {
        let store = Arc::clone(store);
        tokio::spawn(async move {
            for i in 0..events {
                let sent = origin.elapsed().as_nanos().to_string();
                store
                    .create(&format!("/watch/{i:07}"), Bytes::from(sent))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
        })
    };
    let start = Instant::now();
    let mut latencies = Vec::with_capacity(events);
    while latencies.len() < events {
        let event = tokio::time::timeout(Duration::from_secs(30), watch.next())
            .await
            .expect("watch stalled")
            .expect("watch ended")
            .expect("watch failed");
        let sent: u64 = std::str::from_utf8(&event.kv.value)
            .unwrap()
            .parse()
            .unwrap();
        latencies.push(origin.elapsed().saturating_sub(Duration::from_nanos(sent)));
    }
    writer.await.unwrap();
    Sample {
        ops: latencies.len(),
        elapsed: start.elapsed(),
        latencies,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn run(store: Arc<dyn Store>, scale: &Scale) -> Vec<(&'static str, Sample)> {
    vec![
        (
            "put 256 B, 1 writer",
            puts(&store, "/serial", 1, scale.serial_puts).await,
        ),
        (
            "put 256 B, 16 writers",
            puts(&store, "/c16", 16, scale.concurrent_puts).await,
        ),
        (
            "put 256 B, 100 writers",
            puts(&store, "/c100", 100, scale.concurrent_puts).await,
        ),
        (
            "put at 1,000/s (32 clients)",
            paced_puts(&store, "/paced", 1000, scale.paced_seconds).await,
        ),
        ("list 10,000 keys", list_all(&store, scale.list_keys).await),
        (
            "watch delivery",
            watch_delivery(&store, scale.watch_events).await,
        ),
    ]
}

fn main() {
    let quick = std::env::var_os("TUGBOAT_BENCH_QUICK").is_some();
    let scale = if quick {
        Scale {
            serial_puts: 200,
            concurrent_puts: 1600,
            list_keys: 10_000,
            watch_events: 200,
            paced_seconds: 1,
        }
    } else {
        Scale {
            serial_puts: 3000,
            concurrent_puts: 20_000,
            list_keys: 10_000,
            watch_events: 2000,
            paced_seconds: 5,
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let embedded: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(EmbeddedConfig::new(dir.path().join("store"))).unwrap());
    let ours = runtime.block_on(run(embedded, &scale));

    let etcd_process = EtcdProcess::spawn()
        .expect("etcd (apt-get install etcd-server) is needed for the comparison");
    let etcd: Arc<dyn Store> = Arc::new(
        runtime
            .block_on(EtcdStore::connect(&[etcd_process.endpoint()]))
            .unwrap(),
    );
    let theirs = runtime.block_on(run(etcd, &scale));

    println!();
    println!(
        "B1 store benchmark: embedded (redb, fsync per group commit) vs etcd 3.4 (single member, loopback)"
    );
    println!(
        "| workload | embedded ops/s | p50 | p99 | etcd ops/s | p50 | p99 | ratio (embedded/etcd ops/s) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for ((name, a), (_, b)) in ours.iter().zip(&theirs) {
        println!(
            "| {name} | {:.0} | {} | {} | {:.0} | {} | {} | {:.2}x |",
            a.ops_per_sec(),
            ms(a.percentile(0.5)),
            ms(a.percentile(0.99)),
            b.ops_per_sec(),
            ms(b.percentile(0.5)),
            ms(b.percentile(0.99)),
            a.ops_per_sec() / b.ops_per_sec(),
        );
    }
    drop(etcd_process);
}
