//! The etcd backend: [`Store`] on a real etcd cluster through `etcd-client`.
//!
//! # Mapping
//!
//! The store's model is etcd's v3 model, so revisions, `create_revision`, `mod_revision` and
//! `version` are etcd's own, unchanged. Each operation is one etcd request:
//!
//! | store | etcd |
//! |---|---|
//! | `get` | `Range(key)` |
//! | `list` | `Range([start, prefix_end), limit, revision)`; `start` is the prefix or the continue key |
//! | `create` | `Txn(create_revision(key) == 0 ? Put : -)` |
//! | `update` | `Txn(version(key) > 0 && mod_revision(key) == expected ? Put : Range(key))` |
//! | `delete` | `Txn(version(key) > 0 [&& mod_revision(key) == expected] ? DeleteRange(prev_kv) : Range(key))` |
//! | `watch` | `Watch(prefix range, start_revision = after + 1, prev_kv)` |
//! | `current_revision` | the header revision of a count-only `Range` |
//! | `compact` | `Compact(revision)` |
//!
//! The failing branch of `update` and `delete` reads the key in the same transaction, so
//! `Conflict` carries the key's revision at that very moment, and a missing key is `NotFound`.
//! `version > 0` keeps a stale `mod_revision` of 0 from matching an absent key.
//!
//! A list reads at one revision, so its pages form one consistent snapshot: the first page's
//! [`ListResult::revision`] is passed back as `at_revision` with the continue key
//! (the last key returned plus `"\0"`). etcd counts the whole range on every page, which
//! gives `remaining`.
//!
//! Before opening a watch, a count-only read at the start revision tells whether that revision
//! was compacted, so `watch` itself returns [`StoreError::Compacted`] (etcd would accept the
//! watch and cancel it a moment later; a compaction after that still ends the stream with a
//! `Compacted` item). A start revision in the future is accepted: the watch waits for it, as
//! etcd's does. etcd reads an event's `prev` at the revision before it; should that revision be
//! compacted meanwhile, etcd leaves `prev` out.
//!
//! etcd 3.4 has no call that tells its compaction revision; when a read or watch hits a
//! compacted revision, the backend opens a watch from revision 1, which etcd cancels with its
//! `compact_revision`, and reports that in [`StoreError::Compacted`].
//!
//! # Limits
//!
//! [`MAX_VALUE_BYTES`](crate::MAX_VALUE_BYTES) (1.5 MiB) is checked before every write.
//! etcd's own `--max-request-bytes` defaults to 1.5 MiB for the *whole request*, which a value
//! at the limit plus key and framing exceeds: **run etcd with `--max-request-bytes=2097152` or
//! more.** When etcd still refuses a request as too large, that is reported as
//! [`StoreError::TooLarge`] too. Responses may be large (a list, a watch catching up), so the
//! client accepts messages up to 2 GiB, as Kubernetes' etcd client does.
//!
//! # Failures
//!
//! Every call is bounded by [`EtcdOptions::request_timeout`]. Reads (`get`, `list`,
//! `current_revision`) and `compact` are idempotent and retried a few times with backoff.
//! A request that never reached etcd is sent again at once, writes included: tonic's balancer
//! reports a failed connect to one endpoint only on the next request it routes there, so with
//! one member of a cluster dead, a share of requests would otherwise fail without being sent.
//! Writes are never retried once sent: a write whose answer was lost may or may not have been
//! applied, and repeating it could apply it twice or report a false conflict; the caller gets
//! [`StoreError::Unavailable`] saying so and decides (the API server answers 5xx and the client
//! re-reads). All transport and gRPC failures become `Unavailable` naming the operation and the
//! endpoints. A watch whose connection breaks ends with an `Unavailable` item; the caller
//! re-watches from the last revision it saw.

mod failure;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions,
    KvClient, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchClient, WatchOptions,
};

use self::failure::{CallError, Failure, RetryPolicy, bounded, send_until_sent};
use crate::{
    Deleted, KeyValue, ListOptions, ListResult, Result, Revision, Store, StoreError, WatchStream,
    check_write, prefix_end,
};

/// The largest gRPC message the client accepts (Kubernetes uses the same bound).
const MAX_RESPONSE_BYTES: usize = i32::MAX as usize;

/// A key read only for its response header (revision) or to probe compaction. It need not exist.
const PROBE_KEY: &[u8] = b"\0tugboat-probe";

/// Timeouts and retries of an [`EtcdStore`].
#[derive(Clone, Debug)]
pub struct EtcdOptions {
    /// Bound on connecting to etcd, including the first request that proves it answers.
    pub connect_timeout: Duration,
    /// Bound on each request.
    pub request_timeout: Duration,
    /// Attempts in all for a read that fails transiently (at least 1).
    pub read_attempts: u32,
    /// Pause after the first failed read attempt; doubled after each further one.
    pub retry_backoff: Duration,
    /// HTTP/2 keep-alive ping interval, so a watch notices a dead connection.
    pub keep_alive_interval: Duration,
    /// How long a keep-alive ping may go unanswered before the connection counts as dead.
    pub keep_alive_timeout: Duration,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            read_attempts: 3,
            retry_backoff: Duration::from_millis(100),
            // etcd refuses pings more often than every 5 s (its keep-alive enforcement policy).
            keep_alive_interval: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(5),
        }
    }
}

/// A [`Store`] backed by an etcd cluster. Cheap to share behind an `Arc`; calls run
/// concurrently over one HTTP/2 connection per endpoint.
#[derive(Clone)]
pub struct EtcdStore {
    kv: KvClient,
    watch: WatchClient,
    /// The endpoints, comma-separated, for error messages.
    endpoints: Arc<str>,
    request_timeout: Duration,
    reads: RetryPolicy,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connect to etcd at `endpoints` (`http://host:port`) with default [`EtcdOptions`].
    ///
    /// Fails with [`StoreError::Unavailable`] naming the endpoints when etcd does not answer
    /// within [`EtcdOptions::connect_timeout`].
    pub async fn connect(endpoints: &[String]) -> Result<Self> {
        Self::connect_with(endpoints, EtcdOptions::default()).await
    }

    /// Connect to etcd at `endpoints` with the given timeouts and retries.
    pub async fn connect_with(endpoints: &[String], options: EtcdOptions) -> Result<Self> {
        if endpoints.is_empty() {
            return Err(StoreError::Invalid("no etcd endpoints given".into()));
        }
        let joined: Arc<str> = endpoints.join(",").into();
        let connect_options = ConnectOptions::new()
            .with_connect_timeout(options.connect_timeout)
            .with_keep_alive(options.keep_alive_interval, options.keep_alive_timeout)
            // etcd answers pings on an idle connection with GOAWAY ("too many pings").
            .with_keep_alive_while_idle(false);
        // One deadline for connecting and for the first answer.
        let deadline = tokio::time::Instant::now() + options.connect_timeout;
        let time_left = || deadline.saturating_duration_since(tokio::time::Instant::now());
        let client = bounded(
            time_left(),
            Client::connect(endpoints, Some(connect_options)),
        )
        .await
        .map_err(|error| match error {
            CallError::Etcd(
                etcd_client::Error::InvalidUri(_) | etcd_client::Error::InvalidArgs(_),
            ) => StoreError::Invalid(format!("bad etcd endpoints {joined:?}: {error}")),
            _ => StoreError::unavailable(format!("cannot connect to etcd at {joined}"), error),
        })?;
        let store = EtcdStore {
            kv: client
                .kv_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            watch: client
                .watch_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            endpoints: joined,
            request_timeout: options.request_timeout,
            reads: RetryPolicy {
                timeout: options.request_timeout,
                attempts: options.read_attempts.max(1),
                backoff: options.retry_backoff,
            },
        };
        // The client connects lazily: one request proves etcd answers.
        let probe = RetryPolicy {
            timeout: time_left(),
            attempts: 1,
            backoff: options.retry_backoff,
        };
        store
            .probe_revision(probe)
            .await
            .map_err(|error| store.failed("cannot reach etcd", error))?;
        Ok(store)
    }

    /// `Unavailable` naming what failed and on which endpoints, with etcd's error as source.
    fn failed(&self, what: impl std::fmt::Display, error: CallError) -> StoreError {
        StoreError::unavailable(format!("{what} (etcd at {})", self.endpoints), error)
    }

    /// Like [`EtcdStore::failed`], for a write whose outcome is unknown.
    fn write_failed(&self, what: impl std::fmt::Display, error: CallError) -> StoreError {
        match error.failure() {
            Failure::Transient => self.failed(
                format!("{what}: outcome unknown, the write may or may not have been applied"),
                error,
            ),
            _ => self.failed(what, error),
        }
    }

    /// One write transaction, bounded, never retried once sent (sent again only when it never
    /// reached a member).
    async fn write_txn(&self, txn: Txn) -> Result<TxnResponse, CallError> {
        send_until_sent(self.request_timeout, &mut || {
            let mut kv = self.kv.clone();
            let txn = txn.clone();
            async move { kv.txn(txn).await }
        })
        .await
    }

    /// The header revision of a cheap read.
    async fn probe_revision(&self, policy: RetryPolicy) -> Result<Revision, CallError> {
        let response = policy
            .run(|| {
                let mut kv = self.kv.clone();
                async move {
                    kv.get(PROBE_KEY, Some(GetOptions::new().with_count_only()))
                        .await
                }
            })
            .await?;
        Ok(response.header().map_or(0, |header| header.revision()))
    }

    /// etcd's compaction revision, found by opening a watch from revision 1 (which etcd cancels
    /// with the compaction revision). Called only after etcd reported a compacted revision;
    /// falls back to `at_least` should the probe fail.
    async fn compact_revision(&self, at_least: Revision) -> Revision {
        let mut client = self.watch.clone();
        let probe = async {
            let options = WatchOptions::new().with_start_revision(1);
            let mut watch = client.watch(PROBE_KEY, Some(options)).await?;
            while let Some(response) = watch.message().await? {
                if response.canceled() {
                    return Ok(response.compact_revision());
                }
            }
            Ok(0)
        };
        match bounded(self.request_timeout, probe).await {
            Ok(revision) if revision >= at_least => revision,
            Ok(revision) => {
                tracing::warn!(
                    revision,
                    at_least,
                    "etcd reported an unexpected compaction revision"
                );
                at_least
            }
            Err(error) => {
                tracing::warn!(%error, "could not find etcd's compaction revision");
                at_least
            }
        }
    }

    /// [`StoreError::FutureRevision`] for `requested`, with etcd's current revision.
    async fn future_revision(&self, requested: Revision) -> StoreError {
        match self.current_revision().await {
            Ok(current) => StoreError::FutureRevision { requested, current },
            Err(error) => error,
        }
    }
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        if key.is_empty() {
            return Err(StoreError::Invalid("key must not be empty".into()));
        }
        let mut response = self
            .reads
            .run(|| {
                let mut kv = self.kv.clone();
                async move { kv.get(key, None).await }
            })
            .await
            .map_err(|error| self.failed(format_args!("get {key:?}"), error))?;
        response
            .take_kvs()
            .into_iter()
            .next()
            .map(convert_kv)
            .transpose()
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        let at_revision = match opts.at_revision {
            Some(revision) if revision < 0 => {
                return Err(StoreError::Invalid(format!(
                    "list revision {revision} is negative"
                )));
            }
            // etcd reads revision 0 as "now", as the store does.
            Some(revision) => revision,
            None => 0,
        };
        let limit = match opts.limit {
            Some(limit) => i64::try_from(limit)
                .map_err(|_| StoreError::Invalid(format!("list limit {limit} is too large")))?,
            None => 0,
        };
        // A continue key before the prefix would widen the range; the prefix bounds it.
        let start = match &opts.continue_from {
            Some(key) if key.as_str() > prefix => key.as_str(),
            _ => prefix,
        };
        let range_end = prefix_end(prefix).unwrap_or_else(|| vec![0]);
        let options = GetOptions::new()
            .with_range(range_end)
            .with_limit(limit)
            .with_revision(at_revision);

        let outcome = self
            .reads
            .run(|| {
                let mut kv = self.kv.clone();
                let options = options.clone();
                async move { kv.get(range_start(start), Some(options)).await }
            })
            .await;
        let mut response = match outcome {
            Ok(response) => response,
            Err(error) => {
                return Err(match error.failure() {
                    Failure::Compacted => StoreError::Compacted {
                        compact_revision: self.compact_revision(at_revision + 1).await,
                    },
                    Failure::FutureRevision => self.future_revision(at_revision).await,
                    _ => self.failed(format_args!("list {prefix:?}"), error),
                });
            }
        };

        // With an explicit revision etcd's header still carries the current one.
        let revision = if at_revision > 0 {
            at_revision
        } else {
            response.header().map_or(0, |header| header.revision())
        };
        let more = response.more();
        let total = u64::try_from(response.count()).unwrap_or(0);
        let items = response
            .take_kvs()
            .into_iter()
            .map(convert_kv)
            .collect::<Result<Vec<_>>>()?;
        let next_key = match items.last() {
            Some(last) if more => Some(format!("{}\0", last.key)),
            _ => None,
        };
        let remaining = total.saturating_sub(items.len() as u64);
        Ok(ListResult {
            items,
            revision,
            next_key,
            remaining: Some(remaining),
        })
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<Revision> {
        check_write(key, &value)?;
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value.to_vec(), None)]);
        let response = self
            .write_txn(txn)
            .await
            .map_err(|error| self.write_error(format_args!("create {key:?}"), &value, error))?;
        if !response.succeeded() {
            return Err(StoreError::AlreadyExists { key: key.into() });
        }
        header_revision(&response)
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: Revision,
    ) -> Result<Revision> {
        check_write(key, &value)?;
        let txn = Txn::new()
            .when(expect_revision(key, Some(expected_mod_revision)))
            .and_then([TxnOp::put(key, value.to_vec(), None)])
            .or_else([TxnOp::get(key, None)]);
        let response = self
            .write_txn(txn)
            .await
            .map_err(|error| self.write_error(format_args!("update {key:?}"), &value, error))?;
        if !response.succeeded() {
            return Err(mismatch(key, &response));
        }
        header_revision(&response)
    }

    async fn delete(&self, key: &str, expected_mod_revision: Option<Revision>) -> Result<Deleted> {
        check_write(key, &[])?;
        let txn = Txn::new()
            .when(expect_revision(key, expected_mod_revision))
            .and_then([TxnOp::delete(
                key,
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key, None)]);
        let response = self
            .write_txn(txn)
            .await
            .map_err(|error| self.write_failed(format_args!("delete {key:?}"), error))?;
        if !response.succeeded() {
            return Err(mismatch(key, &response));
        }
        let revision = header_revision(&response)?;
        let prev = response
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                TxnOpResponse::Delete(mut deleted) => deleted.take_prev_kvs().into_iter().next(),
                _ => None,
            })
            .ok_or_else(|| StoreError::Unavailable {
                message: format!("etcd did not return the deleted value of {key:?}"),
                source: None,
            })?;
        Ok(Deleted {
            revision,
            prev: convert_kv(prev)?,
        })
    }

    async fn watch(&self, prefix: &str, after_revision: Revision) -> Result<WatchStream> {
        if after_revision < 0 {
            return Err(StoreError::Invalid(format!(
                "watch revision {after_revision} is negative"
            )));
        }
        let start = after_revision + 1;
        let description = format!(
            "watch on {prefix:?} from revision {start} (etcd at {})",
            self.endpoints
        );

        // etcd would accept a compacted start and cancel the watch a moment later; a read at
        // the start revision tells now, so the caller hears it from `watch` itself. A start in
        // the future is fine: the watch waits for it.
        let check = self
            .reads
            .run(|| {
                let mut kv = self.kv.clone();
                let options = GetOptions::new().with_count_only().with_revision(start);
                async move { kv.get(PROBE_KEY, Some(options)).await }
            })
            .await;
        match check {
            Ok(_) => {}
            Err(error) => match error.failure() {
                Failure::FutureRevision => {}
                Failure::Compacted => {
                    return Err(StoreError::Compacted {
                        compact_revision: self.compact_revision(start + 1).await,
                    });
                }
                _ => return Err(self.failed(format_args!("opening the {description}"), error)),
            },
        }

        let options = WatchOptions::new()
            .with_range(prefix_end(prefix).unwrap_or_else(|| vec![0]))
            .with_start_revision(start)
            .with_prev_key();
        // Opened again at once when the balancer picked a member it cannot reach.
        let (watch, first) = send_until_sent(self.request_timeout, &mut || {
            let mut client = self.watch.clone();
            let options = options.clone();
            async move {
                let mut watch = client.watch(range_start(prefix), Some(options)).await?;
                // The first response confirms the watch (`created`); an error surfaces here.
                let first = watch.message().await?;
                Ok((watch, first))
            }
        })
        .await
        .map_err(|error| self.failed(format_args!("opening the {description}"), error))?;
        match first {
            Some(response) if response.created() && !response.canceled() => {}
            Some(response) if response.compact_revision() > 0 => {
                return Err(StoreError::Compacted {
                    compact_revision: response.compact_revision(),
                });
            }
            Some(response) => {
                return Err(StoreError::Unavailable {
                    message: format!(
                        "etcd refused the {description}: {}",
                        response.cancel_reason()
                    ),
                    source: None,
                });
            }
            None => {
                return Err(StoreError::Unavailable {
                    message: format!("etcd closed the {description} before confirming it"),
                    source: None,
                });
            }
        }
        Ok(watch::into_watch_stream(watch, description))
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.probe_revision(self.reads)
            .await
            .map_err(|error| self.failed("reading the current revision", error))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        if revision <= 0 {
            // Nothing is older than revision 0 or below.
            return Ok(());
        }
        // Compaction is idempotent (a repeat reports "compacted"), so it may be retried.
        let outcome = self
            .reads
            .run(|| {
                let mut kv = self.kv.clone();
                async move { kv.compact(revision, Some(CompactionOptions::new())).await }
            })
            .await;
        match outcome {
            Ok(_) => Ok(()),
            Err(error) => match error.failure() {
                Failure::Compacted => Ok(()),
                Failure::FutureRevision => Err(self.future_revision(revision).await),
                _ => Err(self.failed(format_args!("compact at revision {revision}"), error)),
            },
        }
    }
}

impl EtcdStore {
    /// The error for a failed put: `TooLarge` if etcd refused the size, else as any write.
    fn write_error(
        &self,
        what: impl std::fmt::Display,
        value: &[u8],
        error: CallError,
    ) -> StoreError {
        if error.failure() == Failure::TooLarge {
            return StoreError::TooLarge {
                size: value.len(),
                limit: crate::MAX_VALUE_BYTES,
            };
        }
        self.write_failed(what, error)
    }
}

/// The compares of a conditional write: the key exists, and has the expected revision if one
/// is given.
fn expect_revision(key: &str, expected_mod_revision: Option<Revision>) -> Vec<Compare> {
    let mut compares = vec![Compare::version(key, CompareOp::Greater, 0)];
    if let Some(expected) = expected_mod_revision {
        compares.push(Compare::mod_revision(key, CompareOp::Equal, expected));
    }
    compares
}

/// Why a conditional write's compare failed, from the read in its `else` branch.
fn mismatch(key: &str, response: &TxnResponse) -> StoreError {
    let current = response.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.mod_revision()),
        _ => None,
    });
    match current {
        Some(current_revision) => StoreError::Conflict {
            key: key.into(),
            current_revision,
        },
        None => StoreError::NotFound { key: key.into() },
    }
}

/// The revision of a transaction, from its response header.
fn header_revision(response: &TxnResponse) -> Result<Revision> {
    response
        .header()
        .map(|header| header.revision())
        .ok_or_else(|| StoreError::Unavailable {
            message: "etcd answered a transaction without a header".into(),
            source: None,
        })
}

/// etcd refuses an empty key; the smallest key, `"\0"`, starts a range over everything.
fn range_start(key: &str) -> Vec<u8> {
    if key.is_empty() {
        vec![0]
    } else {
        key.as_bytes().to_vec()
    }
}

/// An etcd key-value as the store's, without copying the value twice.
fn convert_kv(kv: etcd_client::KeyValue) -> Result<KeyValue> {
    let (create_revision, mod_revision, version) =
        (kv.create_revision(), kv.mod_revision(), kv.version());
    let (key, value) = kv.into_key_value();
    let key = String::from_utf8(key)
        .map_err(|error| StoreError::unavailable("etcd holds a key that is not UTF-8", error))?;
    Ok(KeyValue {
        key,
        value: Bytes::from(value),
        create_revision,
        mod_revision,
        version,
    })
}
