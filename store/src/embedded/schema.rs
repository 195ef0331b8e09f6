//! The on-disk layout of the embedded store, and the MVCC reads over it.
//!
//! Three redb tables:
//! - `revs`: `(key, revision) -> record`, every kept version of every key. A record is a put
//!   (`create_revision`, `version`, value) or a tombstone. Ordered by key then revision, so the
//!   newest version of a key is the last entry of its range and a prefix list is one range scan.
//! - `log`: `revision -> key`, which key each revision wrote: compaction walks it, and the watch
//!   ring is refilled from its tail at open.
//! - `meta`: the current revision and the compaction revision.

use bytes::Bytes;
use redb::{ReadableTable, TableDefinition};

use crate::{Event, EventKind, KeyValue, Revision};

pub(crate) const REVS: TableDefinition<'_, (&[u8], u64), &[u8]> = TableDefinition::new("revs");
pub(crate) const LOG: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("log");
pub(crate) const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");

pub(crate) const META_REVISION: &str = "revision";
pub(crate) const META_COMPACTED: &str = "compacted";

const TAG_TOMBSTONE: u8 = 0;
const TAG_PUT: u8 = 1;
const HEADER_LEN: usize = 17;

/// One stored version of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Record {
    Put {
        create_revision: Revision,
        version: i64,
        value: Bytes,
    },
    Tombstone,
}

/// A record that does not decode: the file was damaged or written by something else.
#[derive(Debug, thiserror::Error)]
#[error("corrupt record for key {key:?} at revision {revision}")]
pub(crate) struct CorruptRecord {
    pub key: String,
    pub revision: u64,
}

impl Record {
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            Record::Tombstone => vec![TAG_TOMBSTONE],
            Record::Put {
                create_revision,
                version,
                value,
            } => {
                let mut out = Vec::with_capacity(HEADER_LEN + value.len());
                out.push(TAG_PUT);
                out.extend_from_slice(&create_revision.to_le_bytes());
                out.extend_from_slice(&version.to_le_bytes());
                out.extend_from_slice(value);
                out
            }
        }
    }

    pub(crate) fn decode(raw: &[u8], key: &[u8], revision: u64) -> Result<Self, CorruptRecord> {
        let corrupt = || CorruptRecord {
            key: String::from_utf8_lossy(key).into_owned(),
            revision,
        };
        match raw.first() {
            Some(&TAG_TOMBSTONE) if raw.len() == 1 => Ok(Record::Tombstone),
            Some(&TAG_PUT) if raw.len() >= HEADER_LEN => {
                let create = raw[1..9].try_into().map_err(|_| corrupt())?;
                let version = raw[9..17].try_into().map_err(|_| corrupt())?;
                Ok(Record::Put {
                    create_revision: i64::from_le_bytes(create),
                    version: i64::from_le_bytes(version),
                    value: Bytes::copy_from_slice(&raw[HEADER_LEN..]),
                })
            }
            _ => Err(corrupt()),
        }
    }

    /// The key-value this record shows at `revision`, if it is a put.
    pub(crate) fn to_kv(&self, key: &[u8], revision: u64) -> Option<KeyValue> {
        match self {
            Record::Tombstone => None,
            Record::Put {
                create_revision,
                version,
                value,
            } => Some(KeyValue {
                key: String::from_utf8_lossy(key).into_owned(),
                value: value.clone(),
                create_revision: *create_revision,
                mod_revision: rev_i64(revision),
                version: *version,
            }),
        }
    }
}

pub(crate) fn rev_i64(revision: u64) -> Revision {
    i64::try_from(revision).unwrap_or(i64::MAX)
}

pub(crate) fn rev_u64(revision: Revision) -> u64 {
    u64::try_from(revision).unwrap_or(0)
}

/// The newest version of `key` at or below `at` (all versions when `at` is `u64::MAX`).
pub(crate) fn version_at<T: ReadableTable<(&'static [u8], u64), &'static [u8]>>(
    table: &T,
    key: &[u8],
    at: u64,
) -> Result<Option<(u64, Record)>, super::EngineError> {
    let mut range = table.range((key, 0)..=(key, at))?;
    match range.next_back() {
        None => Ok(None),
        Some(entry) => {
            let (k, v) = entry?;
            let revision = k.value().1;
            Ok(Some((revision, Record::decode(v.value(), key, revision)?)))
        }
    }
}

/// Rebuild the watch event for the write at `revision` to `key`.
pub(crate) fn event_at<T: ReadableTable<(&'static [u8], u64), &'static [u8]>>(
    table: &T,
    key: &[u8],
    revision: u64,
) -> Result<Option<Event>, super::EngineError> {
    let Some((found, record)) = version_at(table, key, revision)? else {
        return Ok(None);
    };
    if found != revision {
        return Ok(None);
    }
    let prev = match revision.checked_sub(1) {
        Some(before) => version_at(table, key, before)?.and_then(|(r, rec)| rec.to_kv(key, r)),
        None => None,
    };
    Ok(Some(match record.to_kv(key, revision) {
        Some(kv) => Event {
            kind: EventKind::Put,
            kv,
            prev,
        },
        None => Event {
            kind: EventKind::Delete,
            kv: tombstone_kv(key, revision),
            prev,
        },
    }))
}

/// How a delete shows in a watch event: the key, an empty value, the delete's revision.
pub(crate) fn tombstone_kv(key: &[u8], revision: u64) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(key).into_owned(),
        value: Bytes::new(),
        create_revision: 0,
        mod_revision: rev_i64(revision),
        version: 0,
    }
}
