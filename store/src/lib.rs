//! Tugboat's store: a Kubernetes-style MVCC key-value store behind one trait.
//!
//! Only the API server uses this crate. Every write increases one global revision; each key
//! carries `create_revision`, `mod_revision` and `version`, exactly as etcd's v3 API does, so the
//! API server can use the same revision as a resource version whatever the backend.
//!
//! Backends:
//! - [`embedded::EmbeddedStore`]: the default for `tug up`. One directory on disk, crash-safe,
//!   group-committed, with a watch ring in memory. See the module docs for the design.
//! - [`etcd::EtcdStore`]: a real etcd cluster through `etcd-client`, for clusters that outgrow
//!   one machine.
//! - [`memory::memory_store`]: the embedded engine on an in-memory backend, for unit tests.
//!
//! All three pass one conformance suite (`store/tests/conformance.rs`).

use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;


/// A store revision. Revisions start at 1 and only grow; 0 means "no revision".
pub type Revision = i64;

/// The largest value the store accepts (etcd's default request limit).
pub const MAX_VALUE_BYTES: usize = 1536 * 1024;

/// One key with its value and revisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The full key, for example `/registry/pods/default/web-1`.
    pub key: String,
    /// The stored bytes (the API server keeps JSON here).
    pub value: Bytes,
    /// Revision of the write that created this generation of the key.
    pub create_revision: Revision,
    /// Revision of the last write to the key.
    pub mod_revision: Revision,
    /// Number of writes to this generation of the key (1 after create).
    pub version: i64,
}

/// How to page through a list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// At most this many items; `None` or `Some(0)` means all.
    pub limit: Option<usize>,
    /// Start at this key (inclusive); taken from a previous [`ListResult::next_key`].
    pub continue_from: Option<String>,
    /// Read the snapshot at this revision; `None` means the current one.
    pub at_revision: Option<Revision>,
}

/// One page of a list: a consistent snapshot at `revision`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListResult {
    /// Items in key order.
    pub items: Vec<KeyValue>,
    /// The revision the snapshot was read at; pass it as `at_revision` for the next page.
    pub revision: Revision,
    /// Where the next page starts, if there are more items.
    pub next_key: Option<String>,
    /// How many items are left after this page, when the backend knows.
    pub remaining: Option<u64>,
}

/// What a delete removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deleted {
    /// The revision of the delete itself.
    pub revision: Revision,
    /// The key's value just before the delete.
    pub prev: KeyValue,
}

/// The kind of change a watch event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created or updated.
    Put,
    /// The key was deleted.
    Delete,
}

/// One change, as delivered by [`Store::watch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// For a put, the new value. For a delete, the key with an empty value, `mod_revision`
    /// set to the delete's revision and `create_revision`/`version` 0 (as etcd reports it).
    pub kv: KeyValue,
    /// The value before this change, if there was one.
    pub prev: Option<KeyValue>,
}

impl Event {
    /// The revision of this change.
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// A stream of changes in revision order, with no gap and no duplicate. It ends with an
/// error item (for example [`StoreError::Compacted`] when a watcher falls too far behind).
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<Event>> + Send>>;

/// Errors every backend reports in the same terms; the API server maps them one-to-one onto
/// HTTP codes (404, 409, 409, 410, 504, 503, 413, 400).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key does not exist.
    #[error("key {key:?} not found")]
    NotFound {
        /// The key asked for.
        key: String,
    },
    /// `create` found the key already present.
    #[error("key {key:?} already exists")]
    AlreadyExists {
        /// The key asked for.
        key: String,
    },
    /// A compare-and-swap failed: the key's `mod_revision` is not the expected one.
    #[error("key {key:?} was modified: its revision is now {current_revision}")]
    Conflict {
        /// The key asked for.
        key: String,
        /// The key's current `mod_revision`.
        current_revision: Revision,
    },
    /// The revision asked for has been compacted away.
    #[error("revision has been compacted (compacted up to {compact_revision})")]
    Compacted {
        /// The store's compaction revision: the oldest revision still readable.
        compact_revision: Revision,
    },
    /// The revision asked for is newer than the store's current revision.
    #[error("revision {requested} is in the future (current revision is {current})")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The store's current revision.
        current: Revision,
    },
    /// The value is over [`MAX_VALUE_BYTES`].
    #[error("value of {size} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// Size of the value.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The request itself is malformed (an empty key, for example).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The store cannot serve the request now: I/O error, full disk, lost connection.
    #[error("store unavailable: {message}")]
    Unavailable {
        /// What failed, naming the path or endpoint.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl StoreError {
    /// An [`StoreError::Unavailable`] with a message and its cause.
    pub fn unavailable(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Unavailable {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// Result with [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The store contract, shared by every backend.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// The current value of `key`, or `None`.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Keys starting with `prefix`, in key order, as one consistent snapshot.
    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult>;

    /// Create `key`; fails with [`StoreError::AlreadyExists`] if present. Returns the new
    /// revision (the key's `create_revision` and `mod_revision`).
    async fn create(&self, key: &str, value: Bytes) -> Result<Revision>;

    /// Replace `key`'s value if its `mod_revision` is `expected_mod_revision`.
    /// Fails with [`StoreError::Conflict`] otherwise, [`StoreError::NotFound`] if absent.
    async fn update(&self, key: &str, value: Bytes, expected_mod_revision: Revision)
    -> Result<Revision>;

    /// Delete `key`, if given only when its `mod_revision` is `expected_mod_revision`.
    async fn delete(&self, key: &str, expected_mod_revision: Option<Revision>) -> Result<Deleted>;

    /// Every change to keys under `prefix` with a revision greater than `after_revision`, in
    /// revision order. Fails with [`StoreError::Compacted`] if those changes are no longer kept.
    async fn watch(&self, prefix: &str, after_revision: Revision) -> Result<WatchStream>;

    /// The revision of the last write.
    async fn current_revision(&self) -> Result<Revision>;

    /// Drop history older than `revision`: reads at older revisions, and watches starting
    /// before it, fail with [`StoreError::Compacted`] afterwards.
    async fn compact(&self, revision: Revision) -> Result<()>;
}

/// The first key after every key that starts with `prefix` (etcd's range end for a prefix).
pub fn prefix_end(prefix: &str) -> Option<Vec<u8>> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Check the limits every backend shares before a write.
pub(crate) fn check_write(key: &str, value: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(StoreError::Invalid("key must not be empty".into()));
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(StoreError::TooLarge {
            size: value.len(),
            limit: MAX_VALUE_BYTES,
        });
    }
    Ok(())
}
