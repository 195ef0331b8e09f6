//! A keyed, deduplicating work queue (client-go's workqueue shape): a key waits at most once,
//! is handed to one worker at a time, and a key added while it is being worked on comes back
//! once that worker is done. Keys can also come back after a delay (resync, back-off, probes).

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The queue. Share it behind an `Arc`.
#[derive(Debug)]
pub struct WorkQueue<K> {
    inner: Mutex<Inner<K>>,
    changed: Notify,
}

#[derive(Debug)]
struct Inner<K> {
    ready: VecDeque<K>,
    queued: HashSet<K>,
    active: HashSet<K>,
    /// Added while active: queue again when done.
    dirty: HashSet<K>,
    /// Keys to add at a time; only the earliest time per key is kept.
    delayed: HashMap<K, Instant>,
    shut_down: bool,
}

impl<K: Clone + Eq + Hash> Inner<K> {
    fn add(&mut self, key: K) {
        if self.queued.contains(&key) {
            return;
        }
        if self.active.contains(&key) {
            self.dirty.insert(key);
            return;
        }
        self.queued.insert(key.clone());
        self.ready.push_back(key);
    }

    fn promote_due(&mut self, now: Instant) {
        let due: Vec<K> = self
            .delayed
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.delayed.remove(&key);
            self.add(key);
        }
    }
}

impl<K: Clone + Eq + Hash> Default for WorkQueue<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone + Eq + Hash> WorkQueue<K> {
    /// An empty queue.
    pub fn new() -> Self {
        WorkQueue {
            inner: Mutex::new(Inner {
                ready: VecDeque::new(),
                queued: HashSet::new(),
                active: HashSet::new(),
                dirty: HashSet::new(),
                delayed: HashMap::new(),
                shut_down: false,
            }),
            changed: Notify::new(),
        }
    }

    /// Queues `key` now.
    pub fn add(&self, key: K) {
        self.inner.lock().add(key);
        self.changed.notify_waiters();
    }

    /// Queues `key` after `delay` (an earlier pending time for the same key wins).
    pub fn add_after(&self, key: K, delay: Duration) {
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let at = Instant::now() + delay;
        {
            let mut inner = self.inner.lock();
            let slot = inner.delayed.entry(key).or_insert(at);
            if at < *slot {
                *slot = at;
            }
        }
        self.changed.notify_waiters();
    }

    /// The next key to work on; `None` once shut down. Call [`done`](Self::done) after.
    pub async fn next(&self) -> Option<K> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let wake_at = {
                let mut inner = self.inner.lock();
                if inner.shut_down {
                    return None;
                }
                inner.promote_due(Instant::now());
                if let Some(key) = inner.ready.pop_front() {
                    inner.queued.remove(&key);
                    inner.active.insert(key.clone());
                    return Some(key);
                }
                inner.delayed.values().min().copied()
            };
            match wake_at {
                Some(at) => {
                    tokio::select! {
                        () = &mut changed => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => changed.await,
            }
        }
    }

    /// Marks `key` as worked on; it comes back if it was added meanwhile.
    pub fn done(&self, key: &K) {
        let mut inner = self.inner.lock();
        inner.active.remove(key);
        if inner.dirty.remove(key) {
            inner.add(key.clone());
            drop(inner);
            self.changed.notify_waiters();
        }
    }

    /// Forgets any delayed return of `key` (its object is gone).
    pub fn forget(&self, key: &K) {
        self.inner.lock().delayed.remove(key);
    }

    /// Wakes every waiting worker with `None`.
    pub fn shut_down(&self) {
        self.inner.lock().shut_down = true;
        self.changed.notify_waiters();
    }

    /// Keys waiting now (not delayed ones), for tests and metrics.
    pub fn len(&self) -> usize {
        self.inner.lock().ready.len()
    }

    /// Whether no key is waiting now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn keys_are_deduplicated_and_never_handed_out_twice_at_once() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let first = q.next().await;
        assert_eq!(first, Some("a"));
        // Added while active: held back until done.
        q.add("a");
        assert_eq!(q.next().await, Some("b"));
        assert!(q.is_empty());
        q.done(&"a");
        assert_eq!(q.next().await, Some("a"));
        q.done(&"a");
        q.done(&"b");
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn delayed_keys_come_back_at_their_time() {
        let q = Arc::new(WorkQueue::new());
        let start = Instant::now();
        q.add_after("slow", Duration::from_secs(30));
        q.add_after("slow", Duration::from_millis(100));
        let got = tokio::time::timeout(Duration::from_secs(10), q.next())
            .await
            .expect("bounded");
        assert_eq!(got, Some("slow"));
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        assert!(waited < Duration::from_secs(30), "{waited:?}");
    }

    #[tokio::test]
    async fn shutting_down_wakes_waiters() {
        let q = Arc::new(WorkQueue::<u32>::new());
        let waiter = {
            let q = q.clone();
            tokio::spawn(async move { q.next().await })
        };
        tokio::task::yield_now().await;
        q.shut_down();
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("bounded")
            .expect("joined");
        assert_eq!(got, None);
    }
}
