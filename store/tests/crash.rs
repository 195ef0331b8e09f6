//! Crash safety of the embedded store: a child process writes as fast as it can and logs every
//! acknowledged write; we `kill -9` it at random points, reopen the store, and check that every
//! acknowledged write is there and the revision never went backwards.
//!
//! The child is this same test binary, re-run with only the ignored `crash_writer_child` test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use tugboat_store::embedded::{EmbeddedConfig, EmbeddedStore};
use tugboat_store::{ListOptions, Store, StoreError};

const DIR_ENV: &str = "TUGBOAT_CRASH_TEST_DIR";
const GENERATION_ENV: &str = "TUGBOAT_CRASH_TEST_GENERATION";
const KILLS: usize = 25;
const WRITERS: usize = 8;

/// The writer the crash test kills. Runs only when the crash test starts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of kill_9_never_loses_an_acknowledged_write, which runs it"]
async fn crash_writer_child() {
    let dir = std::env::var(DIR_ENV).expect("started by the crash test");
    let generation = std::env::var(GENERATION_ENV).expect("started by the crash test");
    let store = Arc::new(EmbeddedStore::open(EmbeddedConfig::new(dir)).unwrap());
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let store = Arc::clone(&store);
        let generation = generation.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0.. {
                let key = format!("/crash/{generation}/{writer}/{n:06}");
                let rev = store.create(&key, Bytes::from(key.clone())).await.unwrap();
                println!("ACK {key} {rev}");
                if n % 4 == 0 {
                    // A contended compare-and-swap key as well.
                    let current = store.get("/crash-counter").await.unwrap();
                    let result = match current {
                        None => store.create("/crash-counter", Bytes::from("1")).await,
                        Some(kv) => {
                            store
                                .update("/crash-counter", Bytes::from(key.clone()), kv.mod_revision)
                                .await
                        }
                    };
                    match result {
                        Ok(rev) => println!("ACK /crash-counter {rev}"),
                        Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. }) => {}
                        Err(other) => panic!("{other}"),
                    }
                }
            }
        }));
    }
    // Never outlive a parent that died: stop on our own after a bound.
    let _ = tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(tasks)).await;
}

#[test]
fn kill_9_never_loses_an_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut rng = rand::rng();
    let mut acked: BTreeMap<String, i64> = BTreeMap::new();
    let mut last_revision = 0;
    let mut total_acks = 0;

    for generation in 0..KILLS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "crash_writer_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_ENV, &store_dir)
            .env(GENERATION_ENV, generation.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines_rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });

        // Wait for the first acknowledged write, then kill at a random point after it.
        let mut lines = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !lines.iter().any(|l: &String| l.starts_with("ACK ")) {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("writer {generation} acknowledged nothing within 30 s: {lines:?}");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(5..250)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(lines_rx.try_iter());

        for line in &lines {
            if let Some(ack) = line.strip_prefix("ACK ") {
                let (key, rev) = ack.rsplit_once(' ').unwrap();
                let rev: i64 = rev.parse().unwrap();
                let entry = acked.entry(key.to_owned()).or_insert(rev);
                *entry = (*entry).max(rev);
                total_acks += 1;
            }
        }

        let (current, found) = runtime.block_on(async {
            let store = EmbeddedStore::open(EmbeddedConfig::new(&store_dir)).unwrap();
            let current = store.current_revision().await.unwrap();
            let mut found = BTreeMap::new();
            let list = store.list("/crash", ListOptions::default()).await.unwrap();
            for kv in list.items {
                found.insert(kv.key, kv.mod_revision);
            }
            (current, found)
        });
        assert!(
            current >= last_revision,
            "revision went back from {last_revision} to {current}"
        );
        for (key, rev) in &acked {
            let stored = found.get(key).unwrap_or_else(|| {
                panic!("acknowledged {key} at {rev} is lost (kill {generation})")
            });
            assert!(stored >= rev, "{key} went back from {rev} to {stored}");
        }
        let max_acked = acked.values().max().copied().unwrap_or(0);
        assert!(current >= max_acked);
        last_revision = current;
    }
    assert!(
        total_acks >= KILLS,
        "too few writes to mean anything: {total_acks}"
    );
    println!(
        "{KILLS} kills, {total_acks} acknowledged writes, final revision {last_revision}: none lost"
    );
}
