//! The scheduling queue, after kube-scheduler's `PriorityQueue`: an active queue ordered by
//! priority then age, a back-off queue for pods that just failed (exponential, 1 s to 10 s),
//! and an unschedulable set that a cluster change, or a periodic flush, moves back.
//!
//! Keyed by `namespace/name`: adding a pod already queued updates it in place, and a pod
//! handed out by [`SchedulingQueue::pop`] is never handed out again until it is done.

use std::{
    cmp::{Ordering, Reverse},
    collections::{BinaryHeap, HashMap},
    sync::Arc,
    time::Duration,
};

use k8s_openapi::api::core::v1::Pod;
use tokio::time::Instant;

use crate::cache::{PodKey, pod_key};

/// Back-off and flush timings.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// An unschedulable pod is retried at least this often (kube's
    /// `podMaxInUnschedulablePodsDuration`).
    pub max_unschedulable_duration: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            max_unschedulable_duration: Duration::from_secs(5 * 60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Active,
    /// Handed out by `pop`, not yet reported done.
    InFlight,
    Backoff,
    Unschedulable {
        since: Instant,
    },
}

#[derive(Debug)]
struct Entry {
    pod: Arc<Pod>,
    state: State,
    attempts: u32,
    /// When the pod first entered the queue: older pods go first among equal priorities.
    added_at: Instant,
    last_failure: Option<Instant>,
    /// The pod or the cluster changed while it was in flight: a failure retries soon
    /// instead of parking it as unschedulable (kube's move request cycle).
    changed_in_flight: bool,
    /// Bumped whenever the entry is pushed on a heap, to skip stale heap records.
    ticket: u64,
}

#[derive(Debug, PartialEq, Eq)]
struct ActiveRecord {
    priority: i32,
    added_at: Instant,
    ticket: u64,
    key: PodKey,
}

impl Ord for ActiveRecord {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.added_at.cmp(&self.added_at))
            .then_with(|| other.ticket.cmp(&self.ticket))
    }
}

impl PartialOrd for ActiveRecord {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A pod handed out for one scheduling attempt.
#[derive(Debug, Clone)]
pub struct QueuedPod {
    pub pod: Arc<Pod>,
    /// Failed attempts so far.
    pub attempts: u32,
}

/// The pending pods of one scheduler.
#[derive(Debug, Default)]
pub struct SchedulingQueue {
    config: QueueConfig,
    entries: HashMap<PodKey, Entry>,
    active: BinaryHeap<ActiveRecord>,
    backoff: BinaryHeap<Reverse<(Instant, u64, PodKey)>>,
    next_ticket: u64,
}

impl SchedulingQueue {
    pub fn new(config: QueueConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    fn ticket(&mut self) -> u64 {
        self.next_ticket += 1;
        self.next_ticket
    }

    fn push_active(&mut self, key: &str) {
        let ticket = self.ticket();
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        entry.state = State::Active;
        entry.ticket = ticket;
        self.active.push(ActiveRecord {
            priority: priority_of(&entry.pod),
            added_at: entry.added_at,
            ticket,
            key: key.to_owned(),
        });
    }

    fn push_backoff(&mut self, key: &str, now: Instant) {
        let ticket = self.ticket();
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        let until = entry.last_failure.unwrap_or(now) + self.config.backoff(entry.attempts);
        if until <= now {
            self.push_active(key);
            return;
        }
        entry.state = State::Backoff;
        entry.ticket = ticket;
        self.backoff.push(Reverse((until, ticket, key.to_owned())));
    }

    /// Adds a pending pod, or updates it. An unschedulable pod whose spec or labels changed
    /// is retried; a status-only change (such as our own condition) is not.
    pub fn add_or_update(&mut self, pod: Arc<Pod>, now: Instant) {
        let key = pod_key(&pod);
        match self.entries.get_mut(&key) {
            None => {
                self.entries.insert(
                    key.clone(),
                    Entry {
                        pod,
                        state: State::Active,
                        attempts: 0,
                        added_at: now,
                        last_failure: None,
                        changed_in_flight: false,
                        ticket: 0,
                    },
                );
                self.push_active(&key);
            }
            Some(entry) => {
                let relevant_change =
                    pod.spec != entry.pod.spec || pod.metadata.labels != entry.pod.metadata.labels;
                let priority_changed = priority_of(&pod) != priority_of(&entry.pod);
                entry.pod = pod;
                match entry.state {
                    State::InFlight => entry.changed_in_flight |= relevant_change,
                    State::Unschedulable { .. } if relevant_change => {
                        self.push_backoff(&key, now);
                    }
                    State::Active if priority_changed => self.push_active(&key),
                    _ => {}
                }
            }
        }
    }

    /// Drops a pod that was deleted, bound elsewhere, or is no longer ours.
    pub fn delete(&mut self, key: &str) {
        // Heap records of a removed entry are skipped when they surface.
        self.entries.remove(key);
    }

    /// True when some pod may be ready to pop (stale records make this a hint).
    pub fn has_active(&self) -> bool {
        !self.active.is_empty()
    }

    /// True when the pod is queued in any state.
    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// Hands out the most important ready pod.
    pub fn pop(&mut self, now: Instant) -> Option<QueuedPod> {
        self.flush_backoff(now);
        while let Some(record) = self.active.pop() {
            let Some(entry) = self.entries.get_mut(&record.key) else {
                continue;
            };
            if entry.ticket != record.ticket || entry.state != State::Active {
                continue;
            }
            entry.state = State::InFlight;
            entry.changed_in_flight = false;
            return Some(QueuedPod {
                pod: entry.pod.clone(),
                attempts: entry.attempts,
            });
        }
        None
    }

    /// The pod was assumed and is being bound: it leaves the queue. A failed bind comes
    /// back through [`SchedulingQueue::add_after_error`].
    pub fn done(&mut self, key: &str) {
        if self
            .entries
            .get(key)
            .is_some_and(|entry| entry.state == State::InFlight)
        {
            self.entries.remove(key);
        }
    }

    /// No node fits: park the pod until the cluster changes (or retry soon if it already
    /// did while the pod was in flight).
    pub fn add_unschedulable(&mut self, key: &str, now: Instant) {
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        entry.attempts += 1;
        entry.last_failure = Some(now);
        if entry.changed_in_flight {
            self.push_backoff(key, now);
        } else {
            entry.state = State::Unschedulable { since: now };
        }
    }

    /// An error (a failed bind, an API error): retry after back-off. `pod` re-enters the
    /// queue when [`SchedulingQueue::done`] already removed it.
    pub fn add_after_error(&mut self, pod: Arc<Pod>, now: Instant) {
        let key = pod_key(&pod);
        let entry = self.entries.entry(key.clone()).or_insert_with(|| Entry {
            pod,
            state: State::InFlight,
            attempts: 0,
            added_at: now,
            last_failure: None,
            changed_in_flight: false,
            ticket: 0,
        });
        entry.attempts += 1;
        entry.last_failure = Some(now);
        self.push_backoff(&key, now);
    }

    /// Something changed that may let unschedulable pods fit (a node appeared or changed,
    /// a pod went away): retry them, after what is left of their back-off.
    pub fn move_all_to_active_or_backoff(&mut self, now: Instant) {
        let keys: Vec<PodKey> = self
            .entries
            .iter_mut()
            .filter_map(|(key, entry)| match entry.state {
                State::Unschedulable { .. } => Some(key.clone()),
                State::InFlight => {
                    entry.changed_in_flight = true;
                    None
                }
                _ => None,
            })
            .collect();
        for key in keys {
            self.push_backoff(&key, now);
        }
    }

    fn flush_backoff(&mut self, now: Instant) {
        while let Some(Reverse((until, ticket, key))) = self.backoff.peek().cloned() {
            if until > now {
                break;
            }
            self.backoff.pop();
            if self
                .entries
                .get(&key)
                .is_some_and(|entry| entry.ticket == ticket && entry.state == State::Backoff)
            {
                self.push_active(&key);
            }
        }
    }

    /// Periodic housekeeping: back-off that expired, and pods unschedulable for too long.
    pub fn flush(&mut self, now: Instant) {
        self.flush_backoff(now);
        let overdue: Vec<PodKey> = self
            .entries
            .iter()
            .filter(|(_, entry)| {
                matches!(entry.state, State::Unschedulable { since }
                    if now.duration_since(since) >= self.config.max_unschedulable_duration)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in overdue {
            self.push_backoff(&key, now);
        }
    }

    /// When the next back-off ends, for the loop's timer.
    pub fn next_backoff_expiry(&self) -> Option<Instant> {
        self.backoff.peek().map(|Reverse((until, _, _))| *until)
    }

    /// Counts of (active, backoff, unschedulable, in flight) pods, for logs and tests.
    pub fn counts(&self) -> QueueCounts {
        let mut counts = QueueCounts::default();
        for entry in self.entries.values() {
            match entry.state {
                State::Active => counts.active += 1,
                State::Backoff => counts.backoff += 1,
                State::Unschedulable { .. } => counts.unschedulable += 1,
                State::InFlight => counts.in_flight += 1,
            }
        }
        counts
    }
}

/// How many pods are in each part of the queue.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct QueueCounts {
    pub active: usize,
    pub backoff: usize,
    pub unschedulable: usize,
    pub in_flight: usize,
}

impl QueueConfig {
    /// 1 s, 2 s, 4 s ... capped at 10 s, by failed attempts.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(31);
        self.initial_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff)
    }
}

fn priority_of(pod: &Pod) -> i32 {
    pod.spec
        .as_ref()
        .and_then(|spec| spec.priority)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use tugboat_testkit::objects::pod;

    use super::*;

    fn queued(builder: tugboat_testkit::objects::PodBuilder) -> Arc<Pod> {
        Arc::new(builder.obj())
    }

    fn pop_name(queue: &mut SchedulingQueue, now: Instant) -> Option<String> {
        queue
            .pop(now)
            .and_then(|popped| popped.pod.metadata.name.clone())
    }

    #[test]
    fn higher_priority_then_older_goes_first_and_keys_dedup() {
        let mut queue = SchedulingQueue::new(QueueConfig::default());
        let start = Instant::now();
        queue.add_or_update(queued(pod("old")), start);
        queue.add_or_update(queued(pod("new")), start + Duration::from_millis(1));
        queue.add_or_update(
            queued(pod("vip").priority(10)),
            start + Duration::from_millis(2),
        );
        queue.add_or_update(queued(pod("old")), start + Duration::from_millis(3));
        let now = start + Duration::from_millis(4);
        assert_eq!(pop_name(&mut queue, now).as_deref(), Some("vip"));
        assert_eq!(pop_name(&mut queue, now).as_deref(), Some("old"));
        assert_eq!(pop_name(&mut queue, now).as_deref(), Some("new"));
        assert_eq!(pop_name(&mut queue, now), None);
    }

    #[test]
    fn backoff_doubles_from_one_to_ten_seconds() {
        let config = QueueConfig::default();
        let seconds: Vec<u64> = (1..=6).map(|n| config.backoff(n).as_secs()).collect();
        assert_eq!(seconds, vec![1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn unschedulable_pods_wait_for_a_cluster_change_then_their_backoff() {
        let mut queue = SchedulingQueue::new(QueueConfig::default());
        let start = Instant::now();
        queue.add_or_update(queued(pod("p")), start);
        assert!(queue.pop(start).is_some());
        queue.add_unschedulable("default/p", start);
        assert_eq!(queue.counts().unschedulable, 1);
        // Our own status write changes only the status: the pod stays parked.
        let mut with_status = pod("p").obj();
        with_status
            .status
            .get_or_insert_with(Default::default)
            .message = Some("x".into());
        queue.add_or_update(Arc::new(with_status), start);
        assert_eq!(queue.counts().unschedulable, 1);

        queue.move_all_to_active_or_backoff(start + Duration::from_millis(100));
        assert_eq!(queue.counts().backoff, 1);
        assert_eq!(
            pop_name(&mut queue, start + Duration::from_millis(999)),
            None
        );
        assert_eq!(
            queue.next_backoff_expiry(),
            Some(start + Duration::from_secs(1))
        );
        assert_eq!(
            pop_name(&mut queue, start + Duration::from_secs(1)).as_deref(),
            Some("p")
        );
    }

    #[test]
    fn a_change_during_the_attempt_retries_instead_of_parking() {
        let mut queue = SchedulingQueue::new(QueueConfig::default());
        let start = Instant::now();
        queue.add_or_update(queued(pod("p")), start);
        queue.pop(start);
        queue.move_all_to_active_or_backoff(start);
        queue.add_unschedulable("default/p", start);
        assert_eq!(queue.counts().backoff, 1);
    }

    #[test]
    fn spec_changes_retry_parked_pods_and_periodic_flush_retries_old_ones() {
        let mut queue = SchedulingQueue::new(QueueConfig::default());
        let start = Instant::now();
        queue.add_or_update(queued(pod("a")), start);
        queue.add_or_update(queued(pod("b")), start);
        queue.pop(start);
        queue.pop(start);
        queue.add_unschedulable("default/a", start);
        queue.add_unschedulable("default/b", start);
        queue.add_or_update(queued(pod("a").cpu("1")), start + Duration::from_secs(2));
        assert_eq!(
            pop_name(&mut queue, start + Duration::from_secs(2)).as_deref(),
            Some("a")
        );
        queue.flush(start + Duration::from_secs(299));
        assert_eq!(queue.counts().unschedulable, 1);
        queue.flush(start + Duration::from_secs(300));
        assert_eq!(
            pop_name(&mut queue, start + Duration::from_secs(300)).as_deref(),
            Some("b")
        );
    }

    #[test]
    fn done_removes_and_errors_come_back_after_backoff() {
        let mut queue = SchedulingQueue::new(QueueConfig::default());
        let start = Instant::now();
        let p = queued(pod("p"));
        queue.add_or_update(p.clone(), start);
        queue.pop(start);
        queue.done("default/p");
        assert!(!queue.contains("default/p"));
        queue.add_after_error(p, start);
        assert_eq!(pop_name(&mut queue, start), None);
        assert_eq!(
            pop_name(&mut queue, start + Duration::from_secs(1)).as_deref(),
            Some("p")
        );
        // Deleted pods never come out.
        queue.add_or_update(queued(pod("gone")), start);
        queue.delete("default/gone");
        assert_eq!(pop_name(&mut queue, start + Duration::from_secs(5)), None);
    }
}
