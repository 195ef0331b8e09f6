//! Controller expectations, after upstream's `UIDTrackingControllerExpectations`.
//!
//! A controller that creates pods records how many creations (and which deletions) it expects
//! to see through its informer. Until they are observed, or they expire, the controller does not
//! act on its (stale) cache again, so a slow watch never causes double creates or deletes.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use parking_lot::Mutex;
use tokio::time::Instant;

use super::{Change, ObjectKey};

/// How long expectations stay valid: a watch event that never comes must not block forever.
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[derive(Debug)]
struct Expectation {
    pending_creations: i64,
    /// Keys (`namespace/name`) of the pods whose deletion we wait to observe. Tracking keys
    /// rather than a count keeps a pod that is first marked for deletion, then removed, from
    /// being counted twice.
    pending_deletions: HashSet<String>,
    set_at: Instant,
}

/// See the module documentation. Keys are controller keys (`namespace/name`).
#[derive(Debug, Default)]
pub struct Expectations {
    by_controller: Mutex<HashMap<String, Expectation>>,
}

impl Expectations {
    /// Counts what a change of one of `owner`'s pods observes: a new pod is an expected
    /// creation, a pod being deleted or gone an expected deletion. False when the change is a
    /// resync of the same version, which needs no sync.
    pub fn observe_pod_change(&self, owner: &str, change: &Change<Pod>) -> bool {
        let pod_key = ObjectKey::of(change.object().as_ref()).to_string();
        match change {
            Change::Added(pod) if pod.metadata.deletion_timestamp.is_none() => {
                self.creation_observed(owner)
            }
            Change::Updated { old, new }
                if old.metadata.resource_version == new.metadata.resource_version =>
            {
                return false;
            }
            Change::Updated { new, .. } if new.metadata.deletion_timestamp.is_some() => {
                self.deletion_observed(owner, &pod_key)
            }
            Change::Deleted(_) | Change::Added(_) => self.deletion_observed(owner, &pod_key),
            Change::Updated { .. } => {}
        }
        true
    }

    /// Whether the controller may sync: nothing is pending, or what is pending has expired.
    pub fn satisfied(&self, controller: &str) -> bool {
        let by_controller = self.by_controller.lock();
        match by_controller.get(controller) {
            None => true,
            Some(exp) => {
                (exp.pending_creations <= 0 && exp.pending_deletions.is_empty())
                    || exp.set_at.elapsed() > EXPECTATIONS_TIMEOUT
            }
        }
    }

    /// Records that `count` creations are in flight, replacing earlier expectations.
    pub fn expect_creations(&self, controller: &str, count: usize) {
        self.by_controller.lock().insert(
            controller.to_owned(),
            Expectation {
                pending_creations: i64::try_from(count).unwrap_or(i64::MAX),
                pending_deletions: HashSet::new(),
                set_at: Instant::now(),
            },
        );
    }

    /// Records the pods whose deletions are in flight, replacing earlier expectations.
    pub fn expect_deletions(&self, controller: &str, pod_keys: impl IntoIterator<Item = String>) {
        self.by_controller.lock().insert(
            controller.to_owned(),
            Expectation {
                pending_creations: 0,
                pending_deletions: pod_keys.into_iter().collect(),
                set_at: Instant::now(),
            },
        );
    }

    /// One expected creation was seen, or will never happen (the create failed).
    pub fn creation_observed(&self, controller: &str) {
        if let Some(exp) = self.by_controller.lock().get_mut(controller) {
            exp.pending_creations -= 1;
        }
    }

    /// The deletion of `pod_key` was seen, or will never happen (the delete failed).
    pub fn deletion_observed(&self, controller: &str, pod_key: &str) {
        if let Some(exp) = self.by_controller.lock().get_mut(controller) {
            exp.pending_deletions.remove(pod_key);
        }
    }

    /// Forgets the controller (it was deleted).
    pub fn delete(&self, controller: &str) {
        self.by_controller.lock().remove(controller);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_controller_is_satisfied() {
        assert!(Expectations::default().satisfied("ns/rs"));
    }

    #[test]
    fn creations_must_all_be_observed() {
        let exp = Expectations::default();
        exp.expect_creations("ns/rs", 2);
        assert!(!exp.satisfied("ns/rs"));
        exp.creation_observed("ns/rs");
        assert!(!exp.satisfied("ns/rs"));
        exp.creation_observed("ns/rs");
        assert!(exp.satisfied("ns/rs"));
    }

    #[test]
    fn deletions_are_tracked_per_pod_so_repeats_do_not_count_twice() {
        let exp = Expectations::default();
        exp.expect_deletions("ns/rs", ["ns/a".to_owned(), "ns/b".to_owned()]);
        exp.deletion_observed("ns/rs", "ns/a");
        // The same pod seen again (marked, then removed) must not satisfy b's deletion.
        exp.deletion_observed("ns/rs", "ns/a");
        assert!(!exp.satisfied("ns/rs"));
        exp.deletion_observed("ns/rs", "ns/b");
        assert!(exp.satisfied("ns/rs"));
    }

    #[tokio::test(start_paused = true)]
    async fn expectations_expire() {
        let exp = Expectations::default();
        exp.expect_creations("ns/rs", 1);
        tokio::time::advance(EXPECTATIONS_TIMEOUT + Duration::from_secs(1)).await;
        assert!(exp.satisfied("ns/rs"));
    }

    #[test]
    fn delete_forgets() {
        let exp = Expectations::default();
        exp.expect_creations("ns/rs", 1);
        exp.delete("ns/rs");
        assert!(exp.satisfied("ns/rs"));
    }
}
