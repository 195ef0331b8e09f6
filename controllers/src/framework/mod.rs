//! The machinery every controller shares: keys, the work queue, informers, the worker loop,
//! expectations and ownership (controller references).

pub mod claim;
pub mod events;
pub mod expectations;
pub mod history;
pub mod informer;
pub mod key;
pub mod ownership;
pub mod queue;
pub mod runner;
pub mod shared;
pub mod slow_start;

pub use expectations::Expectations;
pub use informer::{Change, Informer};
pub use key::ObjectKey;
pub use queue::WorkQueue;
pub use runner::{Reconciler, Requeue};
pub use shared::{SharedInformer, SharedInformers};
