//! What only the embedded backend has: a directory on disk, reopening, background compaction,
//! and its behaviour on bad directories, corrupt files and a full disk.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tugboat_store::embedded::{EmbeddedConfig, EmbeddedStore};
use tugboat_store::{ListOptions, Store, StoreError};

fn open(dir: &Path) -> EmbeddedStore {
    EmbeddedStore::open(EmbeddedConfig::new(dir)).unwrap()
}

#[tokio::test]
async fn reopening_keeps_data_revisions_and_watch_history() {
    let dir = tempfile::tempdir().unwrap();
    let (r1, r2) = {
        let store = open(dir.path());
        let r1 = store.create("/a", Bytes::from("1")).await.unwrap();
        let r2 = store.update("/a", Bytes::from("2"), r1).await.unwrap();
        (r1, r2)
    };
    let store = open(dir.path());
    assert_eq!(store.current_revision().await.unwrap(), r2);
    let kv = store.get("/a").await.unwrap().unwrap();
    assert_eq!(
        (kv.value, kv.create_revision, kv.version),
        (Bytes::from("2"), r1, 2)
    );
    // History from before the restart is still watchable.
    let mut watch = store.watch("/", r1).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(event.revision(), r2);
    let r3 = store.create("/b", Bytes::from("1")).await.unwrap();
    assert_eq!(r3, r2 + 1);
}

#[tokio::test]
async fn the_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let _store = open(&path);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn an_unusable_directory_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let path = file.join("store");
    let err = EmbeddedStore::open(EmbeddedConfig::new(&path))
        .err()
        .expect("must fail");
    assert!(matches!(err, StoreError::Unavailable { .. }));
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
}

#[test]
fn a_corrupt_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path()).unwrap();
    let file = dir.path().join("store.redb");
    let garbage: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&file, garbage).unwrap();
    let err = EmbeddedStore::open(EmbeddedConfig::new(dir.path()))
        .err()
        .expect("must fail");
    let message = err.to_string();
    assert!(message.contains(&file.display().to_string()), "{message}");
}

#[tokio::test]
async fn background_compaction_keeps_one_interval_of_history() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EmbeddedConfig::new(dir.path());
    config.compaction_interval = Some(Duration::from_millis(200));
    let store = EmbeddedStore::open(config).unwrap();
    let r1 = store.create("/a", Bytes::from("1")).await.unwrap();
    store.update("/a", Bytes::from("2"), r1).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let old = store
            .list(
                "/",
                ListOptions {
                    at_revision: Some(r1),
                    ..Default::default()
                },
            )
            .await;
        if matches!(old, Err(StoreError::Compacted { .. })) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no background compaction within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        store.get("/a").await.unwrap().unwrap().value,
        Bytes::from("2")
    );
}

/// A small tmpfs we mount and unmount ourselves.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk { dir })
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_writes_but_reads_keep_working() {
    let Some(disk) = SmallDisk::mount("4m") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to mount a tmpfs (needs root)"
        );
        eprintln!("skipping: cannot mount a tmpfs here (needs root)");
        return;
    };
    let store = open(&disk.dir.path().join("store"));
    let value = Bytes::from(vec![b'v'; 64 * 1024]);
    let mut written = Vec::new();
    let failure = loop {
        let key = format!("/fill/{:05}", written.len());
        match store.create(&key, value.clone()).await {
            Ok(_) => written.push(key),
            Err(err) => break err,
        }
        assert!(written.len() < 10_000, "a 4 MiB disk never filled up");
    };
    assert!(
        matches!(failure, StoreError::Unavailable { .. }),
        "{failure:?}"
    );
    assert!(!written.is_empty());

    // Reads keep working and see every acknowledged write.
    let list = store.list("/fill/", ListOptions::default()).await.unwrap();
    assert_eq!(list.items.len(), written.len());
    assert!(store.get(&written[0]).await.unwrap().is_some());

    // Once there is room again, writes succeed without a restart.
    disk.resize("64m");
    let mut recovered = false;
    for _ in 0..50 {
        if store.create("/after", Bytes::from("ok")).await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "writes never recovered after space was freed");
    let list = store.list("/fill/", ListOptions::default()).await.unwrap();
    assert_eq!(list.items.len(), written.len());
    drop(store);
}
