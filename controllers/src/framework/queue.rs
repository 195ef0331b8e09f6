//! A keyed, deduplicating, rate-limited work queue, after client-go's `workqueue`.
//!
//! - A key is queued at most once however often it is added ("stingy").
//! - A key is never handed to two workers at once: a key added while it is being processed is
//!   queued again when the worker calls [`WorkQueue::done`].
//! - [`WorkQueue::add_rate_limited`] delays a key by a per-key exponential backoff that
//!   [`WorkQueue::forget`] resets.
//! - Delayed keys live inside the queue itself and are promoted by [`WorkQueue::get`]: no
//!   timer tasks are spawned.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Per-key exponential backoff: `base * 2^failures`, capped.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Delay after the first failure.
    pub base: Duration,
    /// Upper bound of the delay.
    pub max: Duration,
}

impl Default for Backoff {
    /// client-go's default per-item limiter: 5 ms doubling up to 1000 s.
    fn default() -> Self {
        Self {
            base: Duration::from_millis(5),
            max: Duration::from_secs(1000),
        }
    }
}

impl Backoff {
    /// The delay after `failures` earlier failures of the same key.
    pub fn delay(&self, failures: u32) -> Duration {
        // 2^31 * 5 ms is far past any sane cap; clamp the exponent to avoid overflow.
        let factor = 1u64 << failures.min(31);
        let millis = (self.base.as_millis() as u64).saturating_mul(factor);
        Duration::from_millis(millis).min(self.max)
    }
}

struct State<K> {
    queue: VecDeque<K>,
    /// Keys waiting to be processed (queued, or re-added while processing).
    dirty: HashSet<K>,
    processing: HashSet<K>,
    /// Keys whose delay has not run out yet, earliest first; `seq` keeps equal instants FIFO.
    delayed: BinaryHeap<Reverse<(Instant, u64, K)>>,
    delayed_seq: u64,
    failures: HashMap<K, u32>,
    shut_down: bool,
}

/// See the module documentation.
pub struct WorkQueue<K> {
    state: Mutex<State<K>>,
    wakeup: Notify,
    backoff: Backoff,
}

impl<K: Clone + Eq + Hash + Ord> Default for WorkQueue<K> {
    fn default() -> Self {
        Self::new(Backoff::default())
    }
}

impl<K: Clone + Eq + Hash + Ord> WorkQueue<K> {
    /// An empty queue with the given per-key backoff.
    pub fn new(backoff: Backoff) -> Self {
        Self {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                delayed: BinaryHeap::new(),
                delayed_seq: 0,
                failures: HashMap::new(),
                shut_down: false,
            }),
            wakeup: Notify::new(),
            backoff,
        }
    }

    /// Queues `key` unless it is already waiting.
    pub fn add(&self, key: K) {
        let mut state = self.state.lock();
        if Self::add_locked(&mut state, key) {
            drop(state);
            self.wakeup.notify_waiters();
        }
    }

    /// Returns whether a worker may need waking.
    fn add_locked(state: &mut State<K>, key: K) -> bool {
        if state.shut_down || state.dirty.contains(&key) {
            return false;
        }
        state.dirty.insert(key.clone());
        if state.processing.contains(&key) {
            // Queued again by `done`, so one key never runs on two workers.
            return false;
        }
        state.queue.push_back(key);
        true
    }

    /// Queues `key` once `delay` has passed.
    pub fn add_after(&self, key: K, delay: Duration) {
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let mut state = self.state.lock();
        if state.shut_down {
            return;
        }
        let seq = state.delayed_seq;
        state.delayed_seq += 1;
        state
            .delayed
            .push(Reverse((Instant::now() + delay, seq, key)));
        drop(state);
        // A sleeping worker may need to wake earlier than it planned to.
        self.wakeup.notify_waiters();
    }

    /// Queues `key` after its backoff and counts one more failure; returns the delay.
    pub fn add_rate_limited(&self, key: K) -> Duration {
        let delay = {
            let mut state = self.state.lock();
            let failures = state.failures.entry(key.clone()).or_insert(0);
            let delay = self.backoff.delay(*failures);
            *failures = failures.saturating_add(1);
            delay
        };
        self.add_after(key, delay);
        delay
    }

    /// Resets the failure count of `key`.
    pub fn forget(&self, key: &K) {
        self.state.lock().failures.remove(key);
    }

    /// How many times `key` was requeued by [`WorkQueue::add_rate_limited`] since it was
    /// last forgotten.
    pub fn num_requeues(&self, key: &K) -> u32 {
        self.state.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// Number of keys ready to be processed now.
    pub fn len(&self) -> usize {
        self.state.lock().queue.len()
    }

    /// Whether no key is ready to be processed now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops handing out keys: waiting workers get `None`.
    pub fn shut_down(&self) {
        self.state.lock().shut_down = true;
        self.wakeup.notify_waiters();
    }

    /// Waits for the next key, marking it as processing; `None` on shutdown or cancellation.
    /// The caller must call [`WorkQueue::done`] with the key.
    pub async fn get(&self, cancel: &CancellationToken) -> Option<K> {
        loop {
            // Register interest before looking, so an `add` in between is not missed.
            let notified = self.wakeup.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let next_deadline = {
                let mut state = self.state.lock();
                let now = Instant::now();
                while let Some(Reverse((at, _, _))) = state.delayed.peek() {
                    if *at > now {
                        break;
                    }
                    if let Some(Reverse((_, _, key))) = state.delayed.pop() {
                        Self::add_locked(&mut state, key);
                    }
                }
                if state.shut_down {
                    return None;
                }
                if let Some(key) = state.queue.pop_front() {
                    state.dirty.remove(&key);
                    state.processing.insert(key.clone());
                    return Some(key);
                }
                state.delayed.peek().map(|Reverse((at, _, _))| *at)
            };

            match next_deadline {
                Some(deadline) => tokio::select! {
                    () = &mut notified => {}
                    () = tokio::time::sleep_until(deadline) => {}
                    () = cancel.cancelled() => return None,
                },
                None => tokio::select! {
                    () = &mut notified => {}
                    () = cancel.cancelled() => return None,
                },
            }
        }
    }

    /// Marks `key` as processed; queues it again if it was added meanwhile.
    pub fn done(&self, key: &K) {
        let mut state = self.state.lock();
        state.processing.remove(key);
        if state.dirty.contains(key) && !state.shut_down {
            state.queue.push_back(key.clone());
            drop(state);
            self.wakeup.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> WorkQueue<String> {
        WorkQueue::default()
    }

    #[tokio::test]
    async fn deduplicates_waiting_keys() {
        let q = queue();
        let cancel = CancellationToken::new();
        q.add("a".into());
        q.add("a".into());
        q.add("b".into());
        assert_eq!(q.len(), 2);
        assert_eq!(q.get(&cancel).await.as_deref(), Some("a"));
        assert_eq!(q.get(&cancel).await.as_deref(), Some("b"));
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn key_added_while_processing_runs_again_after_done() {
        let q = queue();
        let cancel = CancellationToken::new();
        q.add("a".into());
        let key = q.get(&cancel).await.unwrap();
        q.add("a".into());
        // Not handed to a second worker while the first still holds it.
        assert!(q.is_empty());
        q.done(&key);
        assert_eq!(q.len(), 1);
        assert_eq!(q.get(&cancel).await.as_deref(), Some("a"));
    }

    #[tokio::test]
    async fn key_not_re_added_is_not_requeued_by_done() {
        let q = queue();
        let cancel = CancellationToken::new();
        q.add("a".into());
        let key = q.get(&cancel).await.unwrap();
        q.done(&key);
        assert!(q.is_empty());
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let backoff = Backoff::default();
        assert_eq!(backoff.delay(0), Duration::from_millis(5));
        assert_eq!(backoff.delay(1), Duration::from_millis(10));
        assert_eq!(backoff.delay(4), Duration::from_millis(80));
        assert_eq!(backoff.delay(40), Duration::from_secs(1000));
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limited_keys_wait_their_backoff_and_forget_resets() {
        let q = queue();
        let cancel = CancellationToken::new();
        assert_eq!(q.add_rate_limited("a".into()), Duration::from_millis(5));
        assert_eq!(q.add_rate_limited("a".into()), Duration::from_millis(10));
        assert_eq!(q.num_requeues(&"a".to_string()), 2);
        assert!(q.is_empty());
        let start = Instant::now();
        assert_eq!(q.get(&cancel).await.as_deref(), Some("a"));
        assert_eq!(start.elapsed(), Duration::from_millis(5));
        q.forget(&"a".to_string());
        assert_eq!(q.num_requeues(&"a".to_string()), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn add_after_wakes_a_sleeping_worker() {
        let q = std::sync::Arc::new(queue());
        let cancel = CancellationToken::new();
        let worker = {
            let q = q.clone();
            let cancel = cancel.clone();
            async move { q.get(&cancel).await }
        };
        let producer = async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            q.add_after("late".into(), Duration::from_secs(3));
        };
        let (got, ()) = tokio::join!(worker, producer);
        assert_eq!(got.as_deref(), Some("late"));
    }

    #[tokio::test]
    async fn cancellation_and_shutdown_release_waiting_workers() {
        let q = queue();
        let cancel = CancellationToken::new();
        cancel.cancel();
        assert_eq!(q.get(&cancel).await, None);
        let cancel = CancellationToken::new();
        q.add("a".into());
        q.shut_down();
        assert_eq!(q.get(&cancel).await, None);
    }
}
