//! The crate's error type.

use std::fmt;

use tugboat_api::selector::SelectorError;

/// What a controller's sync can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the API server failed.
    #[error("API request failed")]
    Api(#[from] kube::Error),
    /// An object's label selector does not parse.
    #[error("{kind} {key} has an invalid selector")]
    InvalidSelector {
        /// The object's kind.
        kind: &'static str,
        /// `namespace/name` of the object.
        key: String,
        /// Why the selector is invalid.
        #[source]
        source: SelectorError,
    },
    /// A field of an object's spec is unusable (e.g. a malformed percentage).
    #[error("{kind} {key}: {message}")]
    InvalidSpec {
        /// The object's kind.
        kind: &'static str,
        /// `namespace/name` of the object.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// An informer stopped before its first list (shutdown during startup).
    #[error("the {0} informer stopped before its cache synced")]
    CacheNotSynced(&'static str),
}

/// Shorthand for results with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether the API server answered 409 Conflict: our cache was stale, requeue.
    pub fn is_conflict(&self) -> bool {
        api_status_code(self) == Some(409)
    }

    /// Whether the API server answered 404 Not Found.
    pub fn is_not_found(&self) -> bool {
        api_status_code(self) == Some(404)
    }
}

/// The HTTP status code of an API error answer.
pub fn api_status_code(error: &Error) -> Option<u16> {
    match error {
        Error::Api(kube::Error::Api(status)) => Some(status.code),
        _ => None,
    }
}

/// Whether a kube error is the API server's answer with this status code.
pub fn kube_status_is(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == code)
}

/// Displays an error with its sources, `outer: inner: innermost`, for one-line logs.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}
