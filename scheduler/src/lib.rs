//! Tugboat's scheduler: binds pending pods to nodes as kube-scheduler does.
//!
//! - A pure core with no I/O: [`cache`] (nodes, placed and assumed pods), [`framework`]
//!   (filter, score, kube-scheduler's unschedulable message), [`plugins`] (the default
//!   profile), [`preemption`] (the PostFilter message and victim search) and [`queue`]
//!   (active, back-off and unschedulable pods).
//! - [`run`]: the loop that feeds the core from API watches and binds through
//!   `pods/binding`.

mod api_calls;
pub mod cache;
pub mod error;
pub mod framework;
pub mod plugins;
pub mod preemption;
pub mod queue;
pub mod resources;
mod scheduler;
pub mod volumes;

pub use error::{Error, Result};
pub use scheduler::{SchedulerConfig, run};
