//! The scheduler's errors.

/// What can stop [`crate::run`] or fail one API call of the loop.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed (binding, status, event, eviction).
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
    /// Work in flight did not finish within the shutdown grace period.
    #[error("shutdown grace period of {grace_ms} ms passed with API calls still in flight")]
    ShutdownTimeout { grace_ms: u128 },
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
