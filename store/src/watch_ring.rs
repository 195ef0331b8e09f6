//! The in-memory ring of recent events that serves watches for the embedded engine.
//!
//! The writer publishes every committed change here, in revision order, before it announces the
//! new revision. The ring always holds a contiguous run of revisions `(start, last]`, so a watcher
//! that starts after `start` sees every change with no gap and no duplicate; one that starts
//! before it (or falls so far behind that its position is dropped) gets `Compacted` and relists.
//! Watchers share the ring: a thousand of them cost one copy of each event.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::stream;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::{Event, Revision, StoreError, WatchStream};

/// How many events a watcher takes from the ring per lock.
const READ_BATCH: usize = 256;

/// Bounds on what the ring keeps.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RingLimits {
    pub max_events: usize,
    pub max_bytes: usize,
}

impl Default for RingLimits {
    /// The ring only has to cover how far the API server's watch caches (its only readers in
    /// `tug up`) may lag behind the writer; a watcher further behind relists. 64 MiB is many
    /// seconds of writes at thousands of nodes, and keeps the store's share of memory small
    /// on the small machines Tugboat runs on.
    fn default() -> Self {
        RingLimits {
            max_events: 100_000,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

struct Ring {
    /// Every event with a revision greater than `start` and at most `start + events.len()`.
    start: Revision,
    events: VecDeque<Arc<Event>>,
    bytes: usize,
    limits: RingLimits,
    /// Set when the store closes: watchers end their streams.
    closed: bool,
}

/// The ring plus the announcement of the newest revision it holds.
pub(crate) struct WatchRing {
    ring: Mutex<Ring>,
    latest: watch::Sender<Revision>,
}

fn event_bytes(event: &Event) -> usize {
    let prev = event
        .prev
        .as_ref()
        .map_or(0, |p| p.value.len() + p.key.len());
    event.kv.key.len() + event.kv.value.len() + prev + 64
}

impl WatchRing {
    /// An empty ring whose history starts after `start` (the current revision at open), with
    /// `recent` (events up to `start`, oldest first, contiguous) preloaded.
    pub(crate) fn new(start: Revision, recent: Vec<Event>, limits: RingLimits) -> Self {
        let first = recent.first().map_or(start, |e| e.revision() - 1);
        let mut ring = Ring {
            start: first,
            events: VecDeque::new(),
            bytes: 0,
            limits,
            closed: false,
        };
        for event in recent {
            ring.push(event);
        }
        let (latest, _) = watch::channel(start);
        WatchRing {
            ring: Mutex::new(ring),
            latest,
        }
    }

    /// Append committed events (contiguous revisions, in order) and announce the newest.
    pub(crate) fn publish(&self, events: Vec<Event>) {
        let Some(last) = events.last().map(Event::revision) else {
            return;
        };
        {
            let mut ring = self.ring.lock();
            for event in events {
                ring.push(event);
            }
        }
        self.latest.send_replace(last);
    }

    /// Forget events before `revision` (the store compacted them): a watch must then start at
    /// `revision - 1` or later, as with etcd.
    pub(crate) fn drop_before(&self, revision: Revision) {
        let mut ring = self.ring.lock();
        while ring.events.front().is_some_and(|e| e.revision() < revision) {
            if let Some(old) = ring.events.pop_front() {
                ring.bytes -= event_bytes(&old);
            }
        }
        ring.start = ring.start.max(revision - 1);
    }

    /// End every watch stream: the store is closing.
    pub(crate) fn close(&self) {
        self.ring.lock().closed = true;
        self.latest.send_modify(|_| {});
    }

    /// The oldest revision a watch may start after.
    pub(crate) fn start(&self) -> Revision {
        self.ring.lock().start
    }

    /// A stream of events under `prefix` with revisions after `after`.
    pub(crate) fn watch(
        self: &Arc<Self>,
        prefix: &str,
        after: Revision,
    ) -> Result<WatchStream, StoreError> {
        let start = self.start();
        if after < start {
            return Err(StoreError::Compacted {
                compact_revision: start + 1,
            });
        }
        let state = Watcher {
            ring: Arc::clone(self),
            latest: self.latest.subscribe(),
            prefix: prefix.to_owned(),
            next_after: after,
            pending: VecDeque::new(),
            done: false,
        };
        Ok(Box::pin(stream::unfold(state, Watcher::next)))
    }

    /// Events under `prefix` after revision `after`, at most [`READ_BATCH`] revisions' worth,
    /// and the last revision scanned.
    fn read_after(
        &self,
        prefix: &str,
        after: Revision,
    ) -> Result<Option<(Vec<Event>, Revision)>, StoreError> {
        let ring = self.ring.lock();
        if ring.closed {
            return Ok(None);
        }
        if after < ring.start {
            return Err(StoreError::Compacted {
                compact_revision: ring.start + 1,
            });
        }
        let skip = usize::try_from(after - ring.start).unwrap_or(usize::MAX);
        let mut scanned = after;
        let mut found = Vec::new();
        for event in ring.events.iter().skip(skip).take(READ_BATCH) {
            scanned = event.revision();
            if event.kv.key.starts_with(prefix) {
                found.push(Event::clone(event));
            }
        }
        Ok(Some((found, scanned)))
    }
}

impl Ring {
    fn push(&mut self, event: Event) {
        self.bytes += event_bytes(&event);
        self.events.push_back(Arc::new(event));
        while self.events.len() > self.limits.max_events
            || (self.bytes > self.limits.max_bytes && self.events.len() > 1)
        {
            if let Some(old) = self.events.pop_front() {
                self.bytes -= event_bytes(&old);
                self.start = old.revision();
            }
        }
    }
}

struct Watcher {
    ring: Arc<WatchRing>,
    latest: watch::Receiver<Revision>,
    prefix: String,
    next_after: Revision,
    pending: VecDeque<Event>,
    done: bool,
}

impl Watcher {
    async fn next(mut self) -> Option<(Result<Event, StoreError>, Self)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some((Ok(event), self));
            }
            if self.done {
                return None;
            }
            let latest = *self.latest.borrow_and_update();
            if self.next_after >= latest && !self.ring.ring.lock().closed {
                // Nothing new: wait for the writer's next announcement. A closed channel means
                // the store was dropped, which ends the stream.
                if self.latest.changed().await.is_err() {
                    return None;
                }
                continue;
            }
            match self.ring.read_after(&self.prefix, self.next_after) {
                Ok(Some((events, scanned))) => {
                    self.next_after = scanned;
                    self.pending.extend(events);
                }
                Ok(None) => return None,
                Err(err) => {
                    self.done = true;
                    return Some((Err(err), self));
                }
            }
        }
    }
}
