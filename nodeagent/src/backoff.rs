//! Restart back-off (CrashLoopBackOff, ImagePullBackOff): the first retry is immediate, then
//! each retry waits `initial`, doubling up to `max`; an entry is forgotten after `reset` of
//! quiet (a container that ran cleanly that long starts over at `initial`).

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// Back-off state per key (pod UID + container name, or image).
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    reset: Duration,
    entries: HashMap<String, Entry>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    delay: Duration,
    last_retry: Instant,
}

impl Backoff {
    /// Back-off starting at `initial`, capped at `max`, reset after `reset` of quiet.
    pub fn new(initial: Duration, max: Duration, reset: Duration) -> Self {
        Backoff {
            initial,
            max,
            reset,
            entries: HashMap::new(),
        }
    }

    /// How long `key` must still wait at `now` before the next retry; `None` when it may
    /// retry now.
    pub fn remaining(&self, key: &str, now: Instant) -> Option<Duration> {
        let entry = self.entries.get(key)?;
        let until = entry.last_retry + entry.delay;
        (now < until).then(|| until - now)
    }

    /// How long `key` must still wait at `now` when what it retries last failed at `failed`:
    /// a crashed container waits its delay counted from its exit, as the kubelet's
    /// `IsInBackOffSince`; `None` when it may retry now.
    pub fn remaining_since(&self, key: &str, failed: Instant, now: Instant) -> Option<Duration> {
        let entry = self.entries.get(key)?;
        let until = failed.max(entry.last_retry) + entry.delay;
        (now < until).then(|| until - now)
    }

    /// The delay `key` is waiting out (for messages), if any.
    pub fn current_delay(&self, key: &str) -> Option<Duration> {
        self.entries.get(key).map(|e| e.delay)
    }

    /// Records a retry of `key` at `now` and grows its next delay.
    pub fn retried(&mut self, key: &str, now: Instant) {
        let reset = self.reset;
        let next = match self.entries.get(key) {
            // Quiet for `reset` since the last retry: start over.
            Some(e) if now.saturating_duration_since(e.last_retry) >= reset => self.initial,
            Some(e) => e.delay.saturating_mul(2).min(self.max),
            None => self.initial,
        };
        self.entries.insert(
            key.to_string(),
            Entry {
                delay: next,
                last_retry: now,
            },
        );
    }

    /// Forgets `key` (it ran cleanly for long enough, or its pod is gone).
    pub fn reset(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Forgets every key starting with `prefix` (a pod's containers).
    pub fn reset_prefix(&mut self, prefix: &str) {
        self.entries.retain(|k, _| !k.starts_with(prefix));
    }

    /// How long a run must last to reset the back-off.
    pub fn reset_after(&self) -> Duration {
        self.reset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn delays_double_from_ten_seconds_up_to_five_minutes() {
        let mut b = Backoff::new(secs(10), secs(300), secs(600));
        let mut now = Instant::now();
        assert_eq!(
            b.remaining("c", now),
            None,
            "the first restart is immediate"
        );
        let mut seen = Vec::new();
        for _ in 0..8 {
            b.retried("c", now);
            let delay = b.remaining("c", now).expect("waiting");
            seen.push(delay.as_secs());
            assert_eq!(b.remaining("c", now + delay), None);
            now += delay;
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn a_crashed_container_waits_its_delay_after_it_exited() {
        let mut b = Backoff::new(secs(10), secs(300), secs(600));
        let start = Instant::now();
        assert_eq!(b.remaining_since("c", start, start), None);
        b.retried("c", start);
        // Ran 15 s, longer than the delay: it still waits 10 s from its exit.
        let exited = start + secs(15);
        assert_eq!(b.remaining_since("c", exited, exited), Some(secs(10)));
        assert_eq!(
            b.remaining_since("c", exited, exited + secs(4)),
            Some(secs(6))
        );
        assert_eq!(b.remaining_since("c", exited, exited + secs(10)), None);
    }

    #[test]
    fn quiet_for_the_reset_time_starts_over() {
        let mut b = Backoff::new(secs(10), secs(300), secs(600));
        let start = Instant::now();
        b.retried("c", start);
        b.retried("c", start + secs(10));
        assert_eq!(b.current_delay("c"), Some(secs(20)));
        b.retried("c", start + secs(10) + secs(600));
        assert_eq!(b.current_delay("c"), Some(secs(10)));
        b.reset_prefix("c");
        assert_eq!(b.current_delay("c"), None);
    }
}
