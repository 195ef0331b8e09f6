//! The embedded store: Tugboat's default, one directory on one machine.
//!
//! # Why redb
//! The store needs crash-safe transactions with fsync before acknowledgement, ordered range
//! scans, and snapshot reads that never block the writer. [redb](https://docs.rs/redb) is a
//! pure-Rust, well-maintained B-tree store that gives exactly that (copy-on-write pages,
//! checksummed commit slots, MVCC read transactions) with no C dependency and no background
//! threads of its own. sled is unmaintained and RocksDB adds a C++ build that costs minutes on
//! our 2-core CI; a home-made log would have to earn the crash safety redb already tests.
//!
//! # Design
//! - Every version of every key is a row `(key, revision)` (see [`schema`]), so a list at an old
//!   revision and a paginated list across later writes read one consistent snapshot, as etcd does.
//! - One writer thread owns all writes. Requests queue on a channel; the writer takes everything
//!   queued, applies it in one redb transaction (each successful operation gets the next
//!   revision; a failed compare takes none) and commits with one fsync: concurrent writers are
//!   group-committed, so throughput grows with concurrency while each write is durable before it
//!   is acknowledged.
//! - After the commit the writer appends the batch's events to the [`WatchRing`], then answers
//!   the callers, so a watcher started from any acknowledged revision misses nothing.
//! - Compaction removes versions superseded before the compaction revision, in small
//!   transactions between write batches so writers never wait long. A background thread compacts
//!   to the revision it saw one interval ago, keeping at least that much history (5 minutes by
//!   default, as kube-apiserver asks of etcd).
//! - A failed commit (disk full, I/O error) fails that batch with `Unavailable` and reopens the
//!   database; reads keep working from the last committed state.

mod schema;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::RwLock;
use redb::{Database, Durability, ReadableDatabase, ReadableTable};
use tokio::sync::oneshot;

use self::schema::{
    LOG, META, META_COMPACTED, META_REVISION, REVS, Record, event_at, rev_i64, rev_u64,
    tombstone_kv, version_at,
};
use crate::watch_ring::{RingLimits, WatchRing};
use crate::{
    Deleted, Event, EventKind, KeyValue, ListOptions, ListResult, Result, Revision, Store,
    StoreError, WatchStream, check_write,
};

/// The most operations one commit takes.
const MAX_BATCH: usize = 1024;
/// The most log entries one compaction transaction removes.
const COMPACTION_CHUNK: usize = 2048;
/// The file inside the store directory.
const FILE_NAME: &str = "store.redb";

/// Errors inside the engine; every one becomes [`StoreError::Unavailable`] at the trait.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EngineError {
    #[error(transparent)]
    Storage(#[from] redb::StorageError),
    #[error(transparent)]
    Table(#[from] redb::TableError),
    #[error(transparent)]
    Transaction(#[from] redb::TransactionError),
    #[error(transparent)]
    Commit(#[from] redb::CommitError),
    #[error(transparent)]
    Durability(#[from] redb::SetDurabilityError),
    #[error(transparent)]
    Corrupt(#[from] schema::CorruptRecord),
}

impl From<EngineError> for StoreError {
    fn from(err: EngineError) -> Self {
        StoreError::unavailable("embedded store", err)
    }
}

/// Settings of an embedded store.
#[derive(Clone, Debug)]
pub struct EmbeddedConfig {
    /// The directory holding the store (created 0700 if absent).
    pub dir: PathBuf,
    /// How often the background compactor runs; it keeps at least this much history.
    /// `None` turns background compaction off.
    pub compaction_interval: Option<Duration>,
    /// The most events the watch ring keeps.
    pub watch_ring_events: usize,
    /// The most bytes the watch ring keeps.
    pub watch_ring_bytes: usize,
    /// The most memory redb may use to cache pages and buffer writes (its default is 1 GiB).
    /// Pages beyond it are read from the file through the OS page cache.
    pub cache_bytes: usize,
}

impl EmbeddedConfig {
    /// Defaults for a store in `dir`: 5-minute compaction, a 100,000-event / 64 MiB ring, a
    /// 64 MiB page cache.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let limits = RingLimits::default();
        EmbeddedConfig {
            dir: dir.into(),
            compaction_interval: Some(Duration::from_secs(300)),
            watch_ring_events: limits.max_events,
            watch_ring_bytes: limits.max_bytes,
            cache_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Where the database lives: a file, or memory (for tests).
enum Location {
    File(PathBuf),
    Memory,
}

/// The embedded MVCC store. See the module docs.
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    writer_tx: Option<mpsc::Sender<Request>>,
    writer: Option<thread::JoinHandle<()>>,
    compactor_stop: Option<mpsc::Sender<()>>,
    compactor: Option<thread::JoinHandle<()>>,
}

/// What the writer and the readers share.
struct Shared {
    /// `None` only while the writer reopens the database after a failed commit.
    db: RwLock<Option<Arc<Database>>>,
    location: Location,
    /// redb's cache size, for a reopen.
    cache_bytes: usize,
    ring: Arc<WatchRing>,
}

/// A write: each successful one takes the next revision.
enum Write {
    Create {
        key: String,
        value: Bytes,
    },
    Update {
        key: String,
        value: Bytes,
        expected: Revision,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
}

enum Op {
    Write(Write),
    Compact(Revision),
}

enum Outcome {
    Written(Revision),
    Deleted(Deleted),
    Compacted,
}

type Reply = oneshot::Sender<Result<Outcome>>;

struct Request {
    op: Op,
    reply: Reply,
}

/// What one committed batch did: each write's answer, the events of the successful ones, and
/// the new current revision.
struct Applied {
    results: Vec<Result<Outcome>>,
    events: Vec<Event>,
    current: u64,
}

impl Shared {
    fn database(&self) -> Result<Arc<Database>> {
        self.db
            .read()
            .clone()
            .ok_or_else(|| StoreError::Unavailable {
                message: "the embedded store is reopening after a failed write".into(),
                source: None,
            })
    }
}

impl EmbeddedStore {
    /// Open (or create) the store in `config.dir`.
    ///
    /// Fails with a clear [`StoreError::Unavailable`] naming the path when the directory cannot
    /// be created or written, or the file is corrupt.
    pub fn open(config: EmbeddedConfig) -> Result<Self> {
        let path = prepare_dir(&config.dir)?;
        let db = Database::builder()
            .set_cache_size(config.cache_bytes)
            .create(&path)
            .map_err(|err| open_error(&path, err))?;
        Self::start(db, Location::File(path), &config)
    }

    /// A store held in memory only: the same engine, for tests.
    pub(crate) fn in_memory() -> Result<Self> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|err| StoreError::unavailable("in-memory store", err))?;
        let mut config = EmbeddedConfig::new("");
        config.compaction_interval = None;
        Self::start(db, Location::Memory, &config)
    }

    fn start(db: Database, location: Location, config: &EmbeddedConfig) -> Result<Self> {
        let (current, recent) = init_tables(&db, config.watch_ring_events)?;
        let limits = RingLimits {
            max_events: config.watch_ring_events.max(1),
            max_bytes: config.watch_ring_bytes.max(1),
        };
        let shared = Arc::new(Shared {
            db: RwLock::new(Some(Arc::new(db))),
            location,
            cache_bytes: config.cache_bytes,
            ring: Arc::new(WatchRing::new(rev_i64(current), recent, limits)),
        });
        let (writer_tx, writer_rx) = mpsc::channel();
        let writer = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("store-writer".into())
                .spawn(move || Writer::new(shared, current).run(writer_rx))
                .map_err(|err| StoreError::unavailable("cannot start the store writer", err))?
        };
        let mut store = EmbeddedStore {
            shared,
            writer_tx: Some(writer_tx.clone()),
            writer: Some(writer),
            compactor_stop: None,
            compactor: None,
        };
        if let Some(interval) = config.compaction_interval {
            let (stop_tx, stop_rx) = mpsc::channel();
            let shared = Arc::clone(&store.shared);
            let handle = thread::Builder::new()
                .name("store-compactor".into())
                .spawn(move || run_compactor(&shared, &writer_tx, &stop_rx, interval))
                .map_err(|err| StoreError::unavailable("cannot start the store compactor", err))?;
            store.compactor_stop = Some(stop_tx);
            store.compactor = Some(handle);
        }
        Ok(store)
    }

    async fn submit(&self, op: Op) -> Result<Outcome> {
        let (reply, answer) = oneshot::channel();
        let closed = || StoreError::Unavailable {
            message: "the embedded store is closed".into(),
            source: None,
        };
        self.writer_tx
            .as_ref()
            .ok_or_else(closed)?
            .send(Request { op, reply })
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    fn db(&self) -> Result<Arc<Database>> {
        self.shared.database()
    }

    fn read_list(db: &Database, prefix: &str, opts: &ListOptions) -> Result<ListResult> {
        let txn = db.begin_read().map_err(EngineError::from)?;
        let meta = txn.open_table(META).map_err(EngineError::from)?;
        let current = read_meta(&meta, META_REVISION)?;
        let compacted = read_meta(&meta, META_COMPACTED)?;
        let at = match opts.at_revision {
            None | Some(0) => current,
            Some(requested) => {
                let requested = rev_u64(requested);
                if requested > current {
                    return Err(StoreError::FutureRevision {
                        requested: rev_i64(requested),
                        current: rev_i64(current),
                    });
                }
                if requested < compacted {
                    return Err(StoreError::Compacted {
                        compact_revision: rev_i64(compacted),
                    });
                }
                requested
            }
        };
        let limit = opts.limit.filter(|&l| l > 0).unwrap_or(usize::MAX);
        let start = match &opts.continue_from {
            Some(from) if from.as_str() > prefix => from.as_bytes(),
            _ => prefix.as_bytes(),
        };
        let end = crate::prefix_end(prefix);
        let revs = txn.open_table(REVS).map_err(EngineError::from)?;
        let range = match &end {
            Some(end) => revs.range((start, 0)..(end.as_slice(), 0)),
            None => revs.range((start, 0)..),
        }
        .map_err(EngineError::from)?;

        let mut items = Vec::new();
        let mut next_key = None;
        let mut scanning: Option<Vec<u8>> = None;
        // The newest version at or below `at` of the key being scanned: (revision, record).
        let mut candidate: Option<(u64, Vec<u8>)> = None;
        let mut more = false;
        for entry in range {
            let (k, v) = entry.map_err(EngineError::from)?;
            let (key, revision) = k.value();
            if scanning.as_deref() != Some(key) {
                if let Some(kv) = visible(scanning.take(), candidate.take())? {
                    if items.len() == limit {
                        more = true;
                        break;
                    }
                    items.push(kv);
                }
                scanning = Some(key.to_vec());
            }
            if revision <= at {
                candidate = Some((revision, v.value().to_vec()));
            }
        }
        if !more && let Some(kv) = visible(scanning.take(), candidate.take())? {
            if items.len() == limit {
                more = true;
            } else {
                items.push(kv);
            }
        }
        if more && let Some(last) = items.last() {
            next_key = Some(format!("{}\0", last.key));
        }
        Ok(ListResult {
            items,
            revision: rev_i64(at),
            next_key,
            remaining: None,
        })
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        // Stop the compactor first: it holds a sender to the writer.
        drop(self.compactor_stop.take());
        if let Some(handle) = self.compactor.take() {
            let _ = handle.join();
        }
        drop(self.writer_tx.take());
        if let Some(handle) = self.writer.take() {
            let _ = handle.join();
        }
        self.shared.ring.close();
    }
}

#[async_trait::async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let db = self.db()?;
        let txn = db.begin_read().map_err(EngineError::from)?;
        let revs = txn.open_table(REVS).map_err(EngineError::from)?;
        let found = version_at(&revs, key.as_bytes(), u64::MAX)?;
        Ok(found.and_then(|(revision, record)| record.to_kv(key.as_bytes(), revision)))
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        let db = self.db()?;
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || Self::read_list(&db, &prefix, &opts))
            .await
            .map_err(|err| StoreError::unavailable("list task failed", err))?
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<Revision> {
        check_write(key, &value)?;
        match self
            .submit(Op::Write(Write::Create {
                key: key.to_owned(),
                value,
            }))
            .await?
        {
            Outcome::Written(revision) => Ok(revision),
            _ => Err(unexpected_outcome()),
        }
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<Revision> {
        check_write(key, &value)?;
        match self
            .submit(Op::Write(Write::Update {
                key: key.to_owned(),
                value,
                expected,
            }))
            .await?
        {
            Outcome::Written(revision) => Ok(revision),
            _ => Err(unexpected_outcome()),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Deleted> {
        check_write(key, &[])?;
        match self
            .submit(Op::Write(Write::Delete {
                key: key.to_owned(),
                expected,
            }))
            .await?
        {
            Outcome::Deleted(deleted) => Ok(deleted),
            _ => Err(unexpected_outcome()),
        }
    }

    async fn watch(&self, prefix: &str, after_revision: Revision) -> Result<WatchStream> {
        self.shared.ring.watch(prefix, after_revision)
    }

    async fn current_revision(&self) -> Result<Revision> {
        let db = self.db()?;
        let txn = db.begin_read().map_err(EngineError::from)?;
        let meta = txn.open_table(META).map_err(EngineError::from)?;
        Ok(rev_i64(read_meta(&meta, META_REVISION)?))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        match self.submit(Op::Compact(revision)).await? {
            Outcome::Compacted => Ok(()),
            _ => Err(unexpected_outcome()),
        }
    }
}

/// The key-value a scanned key shows in the snapshot, if any.
fn visible(key: Option<Vec<u8>>, candidate: Option<(u64, Vec<u8>)>) -> Result<Option<KeyValue>> {
    let (Some(key), Some((revision, raw))) = (key, candidate) else {
        return Ok(None);
    };
    let record = Record::decode(&raw, &key, revision).map_err(EngineError::from)?;
    Ok(record.to_kv(&key, revision))
}

fn unexpected_outcome() -> StoreError {
    StoreError::Unavailable {
        message: "embedded store writer answered with the wrong outcome".into(),
        source: None,
    }
}

fn read_meta<T: ReadableTable<&'static str, u64>>(meta: &T, name: &str) -> Result<u64> {
    Ok(meta
        .get(name)
        .map_err(EngineError::from)?
        .map_or(0, |v| v.value()))
}

/// Create the directory (0700) and check it is writable; return the database file's path.
fn prepare_dir(dir: &Path) -> Result<PathBuf> {
    let fail = |what: &str, err: std::io::Error| {
        StoreError::unavailable(format!("{what} {}: {err}", dir.display()), err)
    };
    std::fs::create_dir_all(dir).map_err(|err| fail("cannot create the store directory", err))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|err| fail("cannot set permissions on the store directory", err))?;
    }
    // Opening the database would fail with a less clear error; probe with a file of our own.
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"").map_err(|err| fail("the store directory is not writable:", err))?;
    let _ = std::fs::remove_file(&probe);
    Ok(dir.join(FILE_NAME))
}

fn open_error(path: &Path, err: redb::DatabaseError) -> StoreError {
    let what = match &err {
        redb::DatabaseError::DatabaseAlreadyOpen => "is already open by another process",
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(_)) => "is corrupt",
        redb::DatabaseError::Storage(redb::StorageError::Io(_)) => "cannot be read or written",
        _ => "cannot be opened",
    };
    StoreError::unavailable(format!("store file {} {what}: {err}", path.display()), err)
}

/// Create the tables if absent; return the current revision and the newest events (oldest
/// first, contiguous) for the watch ring.
fn init_tables(db: &Database, ring_events: usize) -> Result<(u64, Vec<Event>)> {
    let txn = db.begin_write().map_err(EngineError::from)?;
    {
        txn.open_table(REVS).map_err(EngineError::from)?;
        txn.open_table(LOG).map_err(EngineError::from)?;
        txn.open_table(META).map_err(EngineError::from)?;
    }
    txn.commit().map_err(EngineError::from)?;

    let txn = db.begin_read().map_err(EngineError::from)?;
    let meta = txn.open_table(META).map_err(EngineError::from)?;
    let current = read_meta(&meta, META_REVISION)?;
    let log = txn.open_table(LOG).map_err(EngineError::from)?;
    let revs = txn.open_table(REVS).map_err(EngineError::from)?;
    let mut recent = Vec::new();
    let mut expected = current;
    for entry in log.range(..=current).map_err(EngineError::from)?.rev() {
        if recent.len() >= ring_events.min(10_000) {
            break;
        }
        let (rev, key) = entry.map_err(EngineError::from)?;
        let revision = rev.value();
        if revision != expected {
            break; // history is only kept contiguous down to the compaction point
        }
        match event_at(&revs, key.value(), revision)? {
            Some(event) => recent.push(event),
            None => break,
        }
        expected -= 1;
    }
    recent.reverse();
    Ok((current, recent))
}

// === impl Writer ===

/// The single writer: batches requests into group commits and runs compaction between them.
struct Writer {
    shared: Arc<Shared>,
    current: u64,
    compaction: Option<PendingCompaction>,
}

struct PendingCompaction {
    target: u64,
    replies: Vec<Reply>,
}

impl Writer {
    fn new(shared: Arc<Shared>, current: u64) -> Self {
        Writer {
            shared,
            current,
            compaction: None,
        }
    }

    fn run(mut self, requests: mpsc::Receiver<Request>) {
        loop {
            // With compaction pending, do a chunk whenever no write is waiting.
            let first = if self.compaction.is_some() {
                match requests.try_recv() {
                    Ok(request) => request,
                    Err(mpsc::TryRecvError::Empty) => {
                        self.compaction_step();
                        continue;
                    }
                    Err(mpsc::TryRecvError::Disconnected) => return,
                }
            } else {
                match requests.recv() {
                    Ok(request) => request,
                    Err(_) => return,
                }
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match requests.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            self.commit_batch(batch);
        }
    }

    fn commit_batch(&mut self, batch: Vec<Request>) {
        let mut writes = Vec::with_capacity(batch.len());
        for request in batch {
            match request.op {
                Op::Compact(revision) => self.request_compaction(revision, request.reply),
                Op::Write(write) => writes.push((write, request.reply)),
            }
        }
        if writes.is_empty() {
            return;
        }
        let applied = match self.shared.database() {
            Ok(db) => self.apply(&db, &writes).map_err(|err| err.to_string()),
            Err(err) => Err(err.to_string()),
        };
        match applied {
            Ok(Applied {
                results,
                events,
                current,
            }) => {
                self.current = current;
                self.shared.ring.publish(events);
                for ((_, reply), result) in writes.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "store commit failed");
                let message = format!("embedded store write failed: {err}");
                for (_, reply) in writes {
                    let _ = reply.send(Err(StoreError::Unavailable {
                        message: message.clone(),
                        source: None,
                    }));
                }
                self.recover();
            }
        }
    }

    /// Apply the writes in one transaction and commit it. Returns each write's result, the
    /// events of the successful ones, and the new current revision.
    fn apply(&self, db: &Database, writes: &[(Write, Reply)]) -> Result<Applied, EngineError> {
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let mut results = Vec::with_capacity(writes.len());
        let mut events = Vec::new();
        let mut current = self.current;
        {
            let mut revs = txn.open_table(REVS)?;
            let mut log = txn.open_table(LOG)?;
            for (write, _) in writes {
                let next = current + 1;
                let result = apply_one(&mut revs, write, next)?;
                match result {
                    Ok((outcome, event)) => {
                        log.insert(next, event.kv.key.as_bytes())?;
                        events.push(event);
                        current = next;
                        results.push(Ok(outcome));
                    }
                    Err(err) => results.push(Err(err)),
                }
            }
            let mut meta = txn.open_table(META)?;
            meta.insert(META_REVISION, current)?;
        }
        txn.commit()?;
        Ok(Applied {
            results,
            events,
            current,
        })
    }

    fn request_compaction(&mut self, revision: Revision, reply: Reply) {
        let target = rev_u64(revision);
        if target > self.current {
            let _ = reply.send(Err(StoreError::FutureRevision {
                requested: revision,
                current: rev_i64(self.current),
            }));
            return;
        }
        match &mut self.compaction {
            Some(pending) => {
                pending.target = pending.target.max(target);
                pending.replies.push(reply);
            }
            None => {
                self.compaction = Some(PendingCompaction {
                    target,
                    replies: vec![reply],
                });
            }
        }
    }

    /// One transaction's worth of compaction; answers the callers when it is complete.
    fn compaction_step(&mut self) {
        let Some(pending) = &self.compaction else {
            return;
        };
        let target = pending.target;
        let chunk = match self.shared.database() {
            Ok(db) => compact_chunk(&db, target).map_err(|err| err.to_string()),
            Err(err) => Err(err.to_string()),
        };
        if chunk.is_ok() {
            self.shared.ring.drop_before(rev_i64(target));
        }
        match chunk {
            Ok(false) => {}
            Ok(true) => {
                if let Some(done) = self.compaction.take() {
                    for reply in done.replies {
                        let _ = reply.send(Ok(Outcome::Compacted));
                    }
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "store compaction failed");
                if let Some(failed) = self.compaction.take() {
                    let message = format!("embedded store compaction failed: {err}");
                    for reply in failed.replies {
                        let _ = reply.send(Err(StoreError::Unavailable {
                            message: message.clone(),
                            source: None,
                        }));
                    }
                }
                self.recover();
            }
        }
    }

    /// After a failed commit redb refuses further writes until the database is reopened: reopen
    /// it, so the store serves again once the cause (a full disk, say) is gone.
    fn recover(&mut self) {
        let Location::File(path) = &self.shared.location else {
            return;
        };
        let mut slot = self.shared.db.write();
        if let Some(mut old) = slot.take() {
            // Readers hold clones only for the length of one read: wait for them, bounded.
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match Arc::try_unwrap(old) {
                    Ok(db) => {
                        drop(db);
                        break;
                    }
                    Err(still_shared) if Instant::now() < deadline => {
                        old = still_shared;
                        thread::sleep(Duration::from_millis(1));
                    }
                    Err(still_shared) => {
                        tracing::warn!("store reopen postponed: readers still busy");
                        *slot = Some(still_shared);
                        return;
                    }
                }
            }
        }
        match Database::builder()
            .set_cache_size(self.shared.cache_bytes)
            .open(path)
        {
            Ok(db) => {
                *slot = Some(Arc::new(db));
                tracing::info!(path = %path.display(), "store reopened after a failed write");
            }
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "store reopen failed; retrying on the next write");
            }
        }
    }
}

/// Apply one write against the transaction's view. The outer error aborts the whole batch; the
/// inner one is this write's own answer (conflict, not found...).
fn apply_one(
    revs: &mut redb::Table<'_, (&'static [u8], u64), &'static [u8]>,
    write: &Write,
    next: u64,
) -> Result<Result<(Outcome, Event)>, EngineError> {
    let key = match write {
        Write::Create { key, .. } | Write::Update { key, .. } | Write::Delete { key, .. } => key,
    };
    let kb = key.as_bytes();
    let latest = version_at(revs, kb, u64::MAX)?.and_then(|(rev, rec)| rec.to_kv(kb, rev));
    let put = |revs: &mut redb::Table<'_, (&'static [u8], u64), &'static [u8]>,
               record: Record,
               prev: Option<KeyValue>|
     -> Result<(Outcome, Event), EngineError> {
        revs.insert((kb, next), record.encode().as_slice())?;
        let kv = record
            .to_kv(kb, next)
            .unwrap_or_else(|| tombstone_kv(kb, next));
        let event = Event {
            kind: EventKind::Put,
            kv,
            prev,
        };
        Ok((Outcome::Written(rev_i64(next)), event))
    };
    let conflict = |prev: &KeyValue| StoreError::Conflict {
        key: key.clone(),
        current_revision: prev.mod_revision,
    };
    Ok(match (write, latest) {
        (Write::Create { value, .. }, None) => {
            let record = Record::Put {
                create_revision: rev_i64(next),
                version: 1,
                value: value.clone(),
            };
            Ok(put(revs, record, None)?)
        }
        (Write::Create { .. }, Some(_)) => Err(StoreError::AlreadyExists { key: key.clone() }),
        (Write::Update { .. } | Write::Delete { .. }, None) => {
            Err(StoreError::NotFound { key: key.clone() })
        }
        (Write::Update { expected, .. }, Some(prev)) if prev.mod_revision != *expected => {
            Err(conflict(&prev))
        }
        (Write::Update { value, .. }, Some(prev)) => {
            let record = Record::Put {
                create_revision: prev.create_revision,
                version: prev.version + 1,
                value: value.clone(),
            };
            Ok(put(revs, record, Some(prev))?)
        }
        (
            Write::Delete {
                expected: Some(expected),
                ..
            },
            Some(prev),
        ) if prev.mod_revision != *expected => Err(conflict(&prev)),
        (Write::Delete { .. }, Some(prev)) => {
            revs.insert((kb, next), Record::Tombstone.encode().as_slice())?;
            let deleted = Deleted {
                revision: rev_i64(next),
                prev: prev.clone(),
            };
            let event = Event {
                kind: EventKind::Delete,
                kv: tombstone_kv(kb, next),
                prev: Some(prev),
            };
            Ok((Outcome::Deleted(deleted), event))
        }
    })
}

/// Compact up to `target` by at most [`COMPACTION_CHUNK`] log entries. Returns whether the
/// compaction is complete.
fn compact_chunk(db: &Database, target: u64) -> Result<bool, EngineError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    let done;
    {
        let mut meta = txn.open_table(META)?;
        let compacted = meta.get(META_COMPACTED)?.map_or(0, |v| v.value());
        if target > compacted {
            // Reads below the target fail from now on, even before the space is reclaimed.
            meta.insert(META_COMPACTED, target)?;
        }
        let mut log = txn.open_table(LOG)?;
        let mut revs = txn.open_table(REVS)?;
        let mut entries = Vec::new();
        for entry in log.range(..target)?.take(COMPACTION_CHUNK) {
            let (rev, key) = entry?;
            entries.push((rev.value(), key.value().to_vec()));
        }
        done = entries.len() < COMPACTION_CHUNK;
        for (revision, key) in entries {
            // Versions older than this one are superseded by it.
            let older: Vec<u64> = revs
                .range((key.as_slice(), 0)..(key.as_slice(), revision))?
                .map(|e| e.map(|(k, _)| k.value().1))
                .collect::<Result<_, _>>()?;
            for old in older {
                revs.remove((key.as_slice(), old))?;
            }
            // A delete that is the visible version at the target leaves nothing to read.
            let newer_visible = revs
                .range((key.as_slice(), revision + 1)..=(key.as_slice(), target))?
                .next()
                .is_some();
            let is_tombstone = match revs.get((key.as_slice(), revision))? {
                Some(raw) => Record::decode(raw.value(), &key, revision)? == Record::Tombstone,
                None => false,
            };
            if !newer_visible && is_tombstone {
                revs.remove((key.as_slice(), revision))?;
            }
            log.remove(revision)?;
        }
    }
    txn.commit()?;
    Ok(done)
}

/// Every `interval`, compact to the revision seen one interval earlier.
fn run_compactor(
    shared: &Shared,
    writer: &mpsc::Sender<Request>,
    stop: &mpsc::Receiver<()>,
    interval: Duration,
) {
    let current = |shared: &Shared| -> Option<u64> {
        let db = shared.database().ok()?;
        let txn = db.begin_read().ok()?;
        let meta = txn.open_table(META).ok()?;
        read_meta(&meta, META_REVISION).ok()
    };
    let mut previous = current(shared);
    loop {
        match stop.recv_timeout(interval) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        if let Some(target) = previous.filter(|&t| t > 0) {
            // Nobody waits for the answer; failures are logged by the writer.
            let (reply, _) = oneshot::channel();
            let op = Op::Compact(rev_i64(target));
            if writer.send(Request { op, reply }).is_err() {
                return;
            }
        }
        previous = current(shared);
    }
}
