//! The memory backend: the embedded engine over redb's in-memory backend.
//!
//! It shares every line of MVCC, revision, compaction and watch logic with
//! [`EmbeddedStore`](crate::embedded::EmbeddedStore), so tests that use it exercise the
//! same semantics as production, without touching the disk. For unit tests only.

use crate::Result;
use crate::embedded::EmbeddedStore;

/// A fresh, empty store held in memory.
pub fn memory_store() -> Result<EmbeddedStore> {
    EmbeddedStore::in_memory()
}
