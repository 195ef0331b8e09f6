//! The HorizontalPodAutoscaler controller (upstream's `pkg/controller/podautoscaler`).
//!
//! - [`replicas`]: the pure replica calculation, stabilization and rate policies.
//! - [`spec`]: reading an HPA's metrics and behavior into the calculation's terms.
//! - `controller`: the loop. Each HPA is a key of a level-triggered queue, synced when it
//!   changes and every sync period: it reads the target's `scale` subresource, the selected
//!   pods and their PodMetrics (`metrics.k8s.io`), decides, scales through the `scale`
//!   subresource and writes the status and a `SuccessfulRescale` event.

mod controller;
pub mod replicas;
pub mod spec;

use std::time::Duration;

pub use controller::{run, run_with};

/// Settings of the HPA controller.
#[derive(Debug, Clone)]
pub struct HpaConfig {
    /// How often each HPA is looked at (upstream `--horizontal-pod-autoscaler-sync-period`,
    /// 15 s).
    pub sync_period: Duration,
    /// The default scale-down stabilization window (upstream
    /// `--horizontal-pod-autoscaler-downscale-stabilization`, 5 min).
    pub downscale_stabilization: Duration,
    /// Usage ratios within this of 1.0 do not scale (0.1).
    pub tolerance: f64,
    /// Concurrent syncs.
    pub workers: usize,
}

impl Default for HpaConfig {
    fn default() -> Self {
        Self {
            sync_period: Duration::from_secs(15),
            downscale_stabilization: Duration::from_secs(300),
            tolerance: replicas::TOLERANCE,
            workers: 5,
        }
    }
}
