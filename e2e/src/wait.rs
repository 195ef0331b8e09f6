//! Bounded waits: every wait in a test has a deadline and names what it waited for.

use std::time::{Duration, Instant};

/// How often the waits poll.
const POLL: Duration = Duration::from_millis(300);

/// Polls `check` until it holds; panics naming `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    wait_for_value(what, timeout, || check().then_some(()));
}

/// Polls `check` until it yields a value, and returns it; panics naming `what` after
/// `timeout`.
pub fn wait_for_value<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}
