//! Turning an etcd watch into the store's [`WatchStream`].
//!
//! The returned stream owns the whole etcd watch (request sender and response stream), so the
//! caller keeps nothing else alive; dropping it resets the gRPC stream, which cancels the watch
//! on the server. etcd batches events into responses; they are handed out one by one, and the
//! stream ends after the first error item.

use std::collections::VecDeque;
use std::sync::Arc;

use etcd_client::EventType;
use futures::stream;

use super::convert_kv;
use crate::{Event, EventKind, Result, StoreError, WatchStream};

/// What the stream still has to hand out.
struct WatchState {
    etcd: etcd_client::WatchStream,
    /// Events of the last response not yet handed out; an error item is always last.
    pending: VecDeque<Result<Event>>,
    /// Set once an error item is queued: nothing follows it.
    finished: bool,
    /// For error messages: which watch, on which endpoints.
    description: Arc<str>,
}

/// Wrap an etcd watch whose `created` response was already read.
pub(super) fn into_watch_stream(
    etcd: etcd_client::WatchStream,
    description: String,
) -> WatchStream {
    let state = WatchState {
        etcd,
        pending: VecDeque::new(),
        finished: false,
        description: description.into(),
    };
    Box::pin(stream::unfold(state, |mut state| async move {
        loop {
            if let Some(item) = state.pending.pop_front() {
                return Some((item, state));
            }
            if state.finished {
                return None;
            }
            state.receive().await;
        }
    }))
}

impl WatchState {
    /// Wait for the next etcd response and queue what it says.
    async fn receive(&mut self) {
        match self.etcd.message().await {
            Ok(Some(response)) => {
                for event in response.events() {
                    match convert_event(event) {
                        Ok(event) => self.pending.push_back(Ok(event)),
                        Err(error) => return self.finish(error),
                    }
                }
                if response.canceled() {
                    let error = if response.compact_revision() > 0 {
                        StoreError::Compacted {
                            compact_revision: response.compact_revision(),
                        }
                    } else {
                        StoreError::Unavailable {
                            message: format!(
                                "etcd canceled the {}: {}",
                                self.description,
                                response.cancel_reason()
                            ),
                            source: None,
                        }
                    };
                    self.finish(error);
                }
                // Other responses without events (created, progress notifications) say nothing.
            }
            Ok(None) => self.finish(StoreError::Unavailable {
                message: format!("etcd closed the {}", self.description),
                source: None,
            }),
            Err(error) => self.finish(StoreError::unavailable(
                format!("the {} failed", self.description),
                error,
            )),
        }
    }

    fn finish(&mut self, error: StoreError) {
        self.pending.push_back(Err(error));
        self.finished = true;
    }
}

/// One etcd event as a store [`Event`]. etcd already reports a delete as the store wants it:
/// the key with an empty value, the delete's revision, and zero create revision and version.
fn convert_event(event: &etcd_client::Event) -> Result<Event> {
    let kind = match event.event_type() {
        EventType::Put => EventKind::Put,
        EventType::Delete => EventKind::Delete,
    };
    let kv = event.kv().cloned().ok_or_else(|| StoreError::Unavailable {
        message: "etcd sent a watch event without a key".into(),
        source: None,
    })?;
    Ok(Event {
        kind,
        kv: convert_kv(kv)?,
        prev: event.prev_kv().cloned().map(convert_kv).transpose()?,
    })
}
