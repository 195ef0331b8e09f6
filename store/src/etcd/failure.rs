//! How a failed etcd call is classified, bounded in time, and retried.
//!
//! etcd reports compaction, future revisions and oversized requests only as gRPC statuses whose
//! message carries one of its fixed error strings (`rpctypes` in etcd's Go client matches them
//! the same way), so those few strings are matched here, once, and nowhere else.

use std::future::Future;
use std::time::Duration;

use tonic::Code;

/// A failed call to etcd: its own error, or no answer in time.
#[derive(Debug, thiserror::Error)]
pub(super) enum CallError {
    /// etcd (or the transport to it) answered with an error.
    #[error(transparent)]
    Etcd(#[from] etcd_client::Error),
    /// No answer within the request timeout.
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

/// What a [`CallError`] means for the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Failure {
    /// The revision asked for has been compacted.
    Compacted,
    /// The revision asked for is newer than etcd's current revision.
    FutureRevision,
    /// etcd refused the request as too large.
    TooLarge,
    /// The request never left: the balancer picked a member it cannot connect to (tonic only
    /// reports a failed connect when the next request is sent on it). Safe to send again at
    /// once, writes included: another member may take it.
    NotSent,
    /// Connection lost, timeout, leader change: the same call may succeed later.
    Transient,
    /// Anything else: retrying the same call will not help.
    Permanent,
}

// etcd's fixed error messages (server/etcdserver/api/v3rpc/rpctypes/error.go).
const COMPACTED: &str = "required revision has been compacted";
const FUTURE_REVISION: &str = "required revision is a future revision";
const REQUEST_TOO_LARGE: &str = "request is too large";
// gRPC's own refusal when a message is over the server's receive limit.
const MESSAGE_TOO_LARGE: &str = "larger than max";
// hyper-util's `HttpConnector` errors, which tonic turns into `Unavailable` with this message:
// no connection was made, so nothing was sent.
const NOT_CONNECTED: [&str; 3] = ["tcp connect error", "tcp open error", "dns error"];

/// How many times in a row a request that never reached etcd is sent again at once. With one
/// member of three down, the balancer may pick the dead one a few times running.
pub(super) const UNSENT_RESENDS: u32 = 8;

impl CallError {
    /// Classify the failure.
    pub(super) fn failure(&self) -> Failure {
        let status = match self {
            CallError::TimedOut(_) => return Failure::Transient,
            CallError::Etcd(etcd_client::Error::GRpcStatus(status)) => status,
            CallError::Etcd(
                etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_),
            ) => return Failure::Transient,
            CallError::Etcd(_) => return Failure::Permanent,
        };
        let message = status.message();
        if status.code() == Code::Unavailable
            && NOT_CONNECTED.iter().any(|m| message.starts_with(m))
        {
            Failure::NotSent
        } else if message.contains(COMPACTED) {
            Failure::Compacted
        } else if message.contains(FUTURE_REVISION) {
            Failure::FutureRevision
        } else if message.contains(REQUEST_TOO_LARGE)
            || (status.code() == Code::ResourceExhausted && message.contains(MESSAGE_TOO_LARGE))
        {
            Failure::TooLarge
        } else if matches!(
            status.code(),
            Code::Unavailable
                | Code::DeadlineExceeded
                | Code::Unknown
                | Code::Aborted
                | Code::Cancelled
        ) {
            Failure::Transient
        } else {
            Failure::Permanent
        }
    }
}

/// Run one call, giving up after `timeout`.
pub(super) async fn bounded<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, CallError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result.map_err(CallError::Etcd),
        Err(_elapsed) => Err(CallError::TimedOut(timeout)),
    }
}

impl Failure {
    /// Whether the same call may succeed later.
    pub(super) fn is_transient(self) -> bool {
        matches!(self, Failure::Transient | Failure::NotSent)
    }
}

/// Run one call, bounded by `timeout` in all; when it fails without having been sent, send it
/// again at once, up to [`UNSENT_RESENDS`] times. Safe for any call, writes included.
pub(super) async fn send_until_sent<T, F, Fut>(
    timeout: Duration,
    call: &mut F,
) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, etcd_client::Error>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut resends = 0;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match bounded(left, call()).await {
            Err(error) if error.failure() == Failure::NotSent && resends < UNSENT_RESENDS => {
                tracing::debug!(%error, "etcd request not sent, sending again");
                resends += 1;
            }
            Err(CallError::TimedOut(_)) => return Err(CallError::TimedOut(timeout)),
            outcome => return outcome,
        }
    }
}

/// How often and how patiently idempotent calls are retried.
#[derive(Clone, Copy, Debug)]
pub(super) struct RetryPolicy {
    /// Bound on each attempt.
    pub(super) timeout: Duration,
    /// Attempts in all, at least 1.
    pub(super) attempts: u32,
    /// Pause after the first failure; doubled after each further one.
    pub(super) backoff: Duration,
}

impl RetryPolicy {
    /// Run an idempotent call (a read, or a compaction), retrying transient failures with
    /// exponential backoff. Only for calls that are safe to repeat whatever happened before.
    pub(super) async fn run<T, F, Fut>(&self, mut call: F) -> Result<T, CallError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let mut pause = self.backoff;
        let mut attempt = 1;
        loop {
            match send_until_sent(self.timeout, &mut call).await {
                Err(error) if error.failure().is_transient() && attempt < self.attempts => {
                    tracing::debug!(attempt, %error, "etcd read failed, retrying");
                    tokio::time::sleep(pause).await;
                    pause = pause.saturating_mul(2);
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: Code, message: &str) -> CallError {
        CallError::Etcd(etcd_client::Error::GRpcStatus(tonic::Status::new(
            code, message,
        )))
    }

    #[test]
    fn etcd_error_strings_are_classified() {
        let cases = [
            (
                status(
                    Code::OutOfRange,
                    "etcdserver: mvcc: required revision has been compacted",
                ),
                Failure::Compacted,
            ),
            (
                status(
                    Code::OutOfRange,
                    "etcdserver: mvcc: required revision is a future revision",
                ),
                Failure::FutureRevision,
            ),
            (
                status(Code::InvalidArgument, "etcdserver: request is too large"),
                Failure::TooLarge,
            ),
            (
                status(
                    Code::ResourceExhausted,
                    "grpc: received message larger than max (3000000 vs. 2621440)",
                ),
                Failure::TooLarge,
            ),
            (
                status(Code::Unavailable, "etcdserver: leader changed"),
                Failure::Transient,
            ),
            (
                status(Code::InvalidArgument, "etcdserver: key is not provided"),
                Failure::Permanent,
            ),
            (
                CallError::TimedOut(Duration::from_secs(1)),
                Failure::Transient,
            ),
            // What tonic makes of a refused connection: nothing was sent.
            (
                status(Code::Unavailable, "tcp connect error"),
                Failure::NotSent,
            ),
            // The same words from etcd itself would not count.
            (
                status(Code::Unknown, "tcp connect error"),
                Failure::Transient,
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(error.failure(), expected, "{error}");
        }
    }

    #[tokio::test]
    async fn transient_failures_are_retried_up_to_the_limit() {
        let policy = RetryPolicy {
            timeout: Duration::from_secs(1),
            attempts: 3,
            backoff: Duration::from_millis(1),
        };
        let mut calls = 0;
        let outcome: Result<(), CallError> = policy
            .run(|| {
                calls += 1;
                async {
                    Err(etcd_client::Error::GRpcStatus(tonic::Status::unavailable(
                        "down",
                    )))
                }
            })
            .await;
        assert!(matches!(outcome, Err(ref e) if e.failure() == Failure::Transient));
        assert_eq!(calls, 3);
    }

    #[tokio::test]
    async fn a_call_that_was_not_sent_is_sent_again_at_once() {
        let mut calls = 0;
        let outcome: Result<u32, CallError> = send_until_sent(Duration::from_secs(1), &mut || {
            calls += 1;
            let result = if calls < 3 {
                Err(etcd_client::Error::GRpcStatus(tonic::Status::unavailable(
                    "tcp connect error",
                )))
            } else {
                Ok(calls)
            };
            async move { result }
        })
        .await;
        assert_eq!(outcome.unwrap(), 3);
        // A transient failure after sending (the outcome of a write is unknown) is not resent.
        let mut calls = 0;
        let outcome: Result<(), CallError> = send_until_sent(Duration::from_secs(1), &mut || {
            calls += 1;
            async {
                Err(etcd_client::Error::GRpcStatus(tonic::Status::unavailable(
                    "etcdserver: leader changed",
                )))
            }
        })
        .await;
        assert!(matches!(outcome, Err(ref e) if e.failure() == Failure::Transient));
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn permanent_failures_are_not_retried() {
        let policy = RetryPolicy {
            timeout: Duration::from_secs(1),
            attempts: 3,
            backoff: Duration::from_millis(1),
        };
        let mut calls = 0;
        let outcome: Result<(), CallError> = policy
            .run(|| {
                calls += 1;
                async {
                    Err(etcd_client::Error::GRpcStatus(tonic::Status::out_of_range(
                        COMPACTED,
                    )))
                }
            })
            .await;
        assert!(matches!(outcome, Err(ref e) if e.failure() == Failure::Compacted));
        assert_eq!(calls, 1);
    }
}
