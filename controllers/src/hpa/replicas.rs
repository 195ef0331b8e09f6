//! The replica calculation of upstream's `pkg/controller/podautoscaler/replica_calculator.go`,
//! pure: from the pods a target selects, their metrics and the target value to a proposed
//! replica count.
//!
//! The rules, as upstream:
//! - Pods being deleted and failed pods are ignored altogether.
//! - For CPU, pods that are pending or not Ready are "unready": their metrics are dropped, and
//!   if the remaining pods ask to scale up, the unready ones count as using 0 (so a pod that is
//!   starting does not make the HPA scale up further).
//! - Pods without metrics count, when scaling down, as using 100 % of their request (or the
//!   target, if higher) and, when scaling up, as using 0.
//! - Within the tolerance (0.1) of the target nothing changes, and a correction that would
//!   reverse the direction of the first estimate is dropped.
//!
//! Beyond upstream, one rule for rollouts (kubernetes/kubernetes#72775, #84142, #90461):
//! **replicas are what the target declares (its `scale`), not the pods that happen to run.**
//! During a Deployment rollout there are up to `maxSurge` extra pods, and new pods that are not
//! ready yet. Upstream multiplies the usage ratio by the number of pods it counted, so 6 pods
//! at 70 % of target for 3 replicas propose ceil(0.7 × 6) = 5: a scale-up while every pod is
//! below target, after which the Deployment surges on top of 5, and so on until the rollout
//! outruns the HPA; the extra replicas stay until the scale-down window has passed. Here:
//! 1. A proposal never goes against the measured usage: with usage below target it is never
//!    above the current replicas, with usage above target never below them (upstream checks
//!    this only for its second, conservative estimate, kubernetes#85027).
//! 2. When scaling up while more pods are ready than the target has replicas, the surge pods
//!    do not multiply the ratio: ceil(ratio × current) instead of ceil(ratio × ready pods).
//! 3. Pods that are not ready count as upstream counts them for CPU (above): their metrics are
//!    dropped, and at most at 0 usage when scaling up, so a starting pod neither adds load nor
//!    adds a replica.
//!
//! The usage ratio itself is still measured over every ready pod with metrics, old and new
//! alike, because they share the load. Outside a rollout (pods = replicas) all of this
//! proposes exactly what upstream does.

/// Default tolerance of the usage ratio (upstream `--horizontal-pod-autoscaler-tolerance`).
pub const TOLERANCE: f64 = 0.1;

/// One pod the target selects, as the calculation sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodSample {
    /// The pod's name (for reports).
    pub name: String,
    /// Phase `Pending`, or not Ready (only matters for CPU).
    pub unready: bool,
    /// Being deleted, or phase `Failed`: ignored.
    pub ignored: bool,
    /// Sum of the containers' requests of the resource, in milli-units (millicores, or
    /// milli-bytes); `None` if some container does not request it.
    pub request: Option<i64>,
    /// Its current usage in the same units, if the metrics API has it.
    pub usage: Option<i64>,
}

/// What the metric is measured against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// Percentage of the pods' requests.
    Utilization(i32),
    /// Average usage per pod, in milli-units.
    AverageValue(i64),
}

/// Why no proposal could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalcError {
    /// No pod selected by the target has metrics.
    #[error("did not receive metrics for targeted pods (pods might be unready)")]
    NoMetrics,
    /// A pod with metrics has no request for the resource (utilization needs one).
    #[error("missing request for {resource} in container(s) of pod {pod}")]
    MissingRequest {
        /// The resource.
        resource: String,
        /// The pod.
        pod: String,
    },
    /// A target of zero or less.
    #[error("invalid target value")]
    InvalidTarget,
}

/// A proposal: the replicas, and the current metric for status.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proposal {
    /// Proposed replica count.
    pub replicas: i32,
    /// Current utilization in percent (Utilization targets).
    pub utilization: Option<i32>,
    /// Current average usage per pod, in milli-units.
    pub average: i64,
}

/// The usage ratio of `pods` (every one with usage) against `target`, with the current
/// utilization and average value.
fn ratio(
    pods: &[(&PodSample, i64)],
    target: Target,
    resource: &str,
) -> Result<(f64, Option<i32>, i64), CalcError> {
    if pods.is_empty() {
        return Err(CalcError::NoMetrics);
    }
    let total: i64 = pods.iter().map(|(_, u)| *u).sum();
    let count = i64::try_from(pods.len()).unwrap_or(i64::MAX);
    let average = total / count;
    match target {
        Target::Utilization(target) => {
            if target <= 0 {
                return Err(CalcError::InvalidTarget);
            }
            let mut requests = 0i64;
            for (pod, _) in pods {
                let request =
                    pod.request
                        .filter(|r| *r > 0)
                        .ok_or_else(|| CalcError::MissingRequest {
                            resource: resource.to_string(),
                            pod: pod.name.clone(),
                        })?;
                requests = requests.saturating_add(request);
            }
            let utilization = total.saturating_mul(100) / requests;
            let utilization = i32::try_from(utilization).unwrap_or(i32::MAX);
            Ok((
                f64::from(utilization) / f64::from(target),
                Some(utilization),
                average,
            ))
        }
        Target::AverageValue(target) => {
            if target <= 0 {
                return Err(CalcError::InvalidTarget);
            }
            Ok((average as f64 / target as f64, None, average))
        }
    }
}

fn ceil_replicas(value: f64) -> i32 {
    let value = value.ceil();
    if value >= f64::from(i32::MAX) {
        i32::MAX
    } else if value <= 0.0 {
        0
    } else {
        value as i32
    }
}

/// Upstream's `GetResourceReplicas` / `GetRawResourceReplicas`: the replicas `pods` need for
/// `target`, given `current` replicas. `cpu` turns on the unready-pod rule.
pub fn propose(
    current: i32,
    pods: &[PodSample],
    target: Target,
    resource: &str,
    tolerance: f64,
) -> Result<Proposal, CalcError> {
    let cpu = resource == "cpu";
    let mut ready: Vec<(&PodSample, i64)> = Vec::new();
    let mut unready: Vec<&PodSample> = Vec::new();
    let mut missing: Vec<&PodSample> = Vec::new();
    for pod in pods.iter().filter(|p| !p.ignored) {
        match pod.usage {
            None => missing.push(pod),
            Some(_) if cpu && pod.unready => unready.push(pod),
            Some(usage) => ready.push((pod, usage)),
        }
    }
    let (usage_ratio, utilization, average) = ratio(&ready, target, resource)?;
    let ready_count = i32::try_from(ready.len()).unwrap_or(i32::MAX);
    let scale_up_with_unready = !unready.is_empty() && usage_ratio > 1.0;
    let proposal = |replicas| Proposal {
        replicas,
        utilization,
        average,
    };

    if !scale_up_with_unready && missing.is_empty() {
        if (1.0 - usage_ratio).abs() <= tolerance {
            return Ok(proposal(current));
        }
        let replicas = ceil_replicas(demand(usage_ratio, ready_count, ready_count, current));
        return Ok(proposal(along_usage(usage_ratio, replicas, current)));
    }

    // The conservative second estimate.
    let mut all = ready.clone();
    // At exactly the target, pods without metrics are left out (upstream does the same).
    if usage_ratio != 1.0 {
        for pod in &missing {
            let fallback = if usage_ratio < 1.0 {
                match target {
                    Target::Utilization(t) => {
                        pod.request
                            .unwrap_or(0)
                            .saturating_mul(i64::from(t.max(100)))
                            / 100
                    }
                    Target::AverageValue(t) => t,
                }
            } else {
                0
            };
            all.push((pod, fallback));
        }
    }
    if scale_up_with_unready {
        for pod in &unready {
            all.push((pod, 0));
        }
    }
    let (new_ratio, _, _) = ratio(&all, target, resource)?;
    if (1.0 - new_ratio).abs() <= tolerance
        || (usage_ratio < 1.0 && new_ratio > 1.0)
        || (usage_ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok(proposal(current));
    }
    let counted = i32::try_from(all.len()).unwrap_or(i32::MAX);
    let replicas = ceil_replicas(demand(new_ratio, counted, ready_count, current));
    Ok(proposal(along_usage(new_ratio, replicas, current)))
}

/// The replicas `ratio` over `counted` pods asks for, before rounding up. Rule 2 of the
/// rollout rule: scaling up while more pods are ready than the target has replicas (a surge),
/// the demand is shared out as if only `current` of the `ready` pods ran: × current / ready.
/// Pods counted at zero usage (not ready, no metrics) add nothing to the demand either way.
fn demand(ratio: f64, counted: i32, ready: i32, current: i32) -> f64 {
    let raw = ratio * f64::from(counted);
    if ratio > 1.0 && current > 0 && ready > current {
        raw * f64::from(current) / f64::from(ready)
    } else {
        raw
    }
}

/// Rule 1 of the rollout rule: `replicas`, unless it goes against the usage (more replicas
/// while below target, fewer while above); then `current`.
fn along_usage(ratio: f64, replicas: i32, current: i32) -> i32 {
    if (ratio < 1.0 && replicas > current) || (ratio > 1.0 && replicas < current) {
        current
    } else {
        replicas
    }
}

/// A scaling policy of `behavior`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// At most this many pods per period.
    Pods {
        /// Pods.
        value: i32,
        /// Period in seconds.
        period_seconds: i32,
    },
    /// At most this percentage of the replicas at the start of the period.
    Percent {
        /// Percent.
        value: i32,
        /// Period in seconds.
        period_seconds: i32,
    },
}

impl Policy {
    fn period(&self) -> i64 {
        match *self {
            Policy::Pods { period_seconds, .. } | Policy::Percent { period_seconds, .. } => {
                i64::from(period_seconds)
            }
        }
    }
}

/// Which policy wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SelectPolicy {
    /// The one allowing the most change (default).
    #[default]
    Max,
    /// The one allowing the least change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// One direction of `behavior`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Stabilization window in seconds.
    pub stabilization_seconds: i64,
    /// The policies.
    pub policies: Vec<Policy>,
    /// Which one applies.
    pub select: SelectPolicy,
}

impl Rules {
    /// Upstream's default scale-up rules: 0 s window, max of 4 pods or 100 % per 15 s.
    pub fn default_up() -> Self {
        Rules {
            stabilization_seconds: 0,
            policies: vec![
                Policy::Pods {
                    value: 4,
                    period_seconds: 15,
                },
                Policy::Percent {
                    value: 100,
                    period_seconds: 15,
                },
            ],
            select: SelectPolicy::Max,
        }
    }

    /// Upstream's default scale-down rules: the given window, 100 % per 15 s.
    pub fn default_down(stabilization_seconds: i64) -> Self {
        Rules {
            stabilization_seconds,
            policies: vec![Policy::Percent {
                value: 100,
                period_seconds: 15,
            }],
            select: SelectPolicy::Max,
        }
    }
}

/// A past recommendation (seconds on any monotonic clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recommendation {
    /// When.
    pub at: i64,
    /// Replicas recommended.
    pub replicas: i32,
}

/// A past scale change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleEvent {
    /// When.
    pub at: i64,
    /// Replicas added (or removed, for a scale-down event: always positive).
    pub change: i32,
}

/// What the HPA remembers between syncs, per object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Recommendations, for the stabilization windows.
    pub recommendations: Vec<Recommendation>,
    /// Scale-ups done.
    pub scale_ups: Vec<ScaleEvent>,
    /// Scale-downs done.
    pub scale_downs: Vec<ScaleEvent>,
}

/// Why the final count differs from the proposal (the ScalingLimited condition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// True if the count was limited.
    pub limited: bool,
    /// Upstream reason: `DesiredWithinRange`, `TooManyReplicas`, `TooFewReplicas`,
    /// `ScaleUpLimit`, `ScaleDownLimit`.
    pub reason: &'static str,
    /// Upstream message.
    pub message: &'static str,
}

/// The bounds and behavior of one HPA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounds {
    /// minReplicas.
    pub min: i32,
    /// maxReplicas.
    pub max: i32,
    /// Scale-up rules.
    pub up: Rules,
    /// Scale-down rules.
    pub down: Rules,
}

/// Upstream's `stabilizeRecommendationWithBehaviors`: the recommendation after the windows;
/// records `proposed` at `now` and drops what is older than both windows.
pub fn stabilize(
    history: &mut History,
    current: i32,
    proposed: i32,
    now: i64,
    bounds: &Bounds,
) -> i32 {
    let mut up = proposed;
    let mut down = proposed;
    let up_cutoff = now - bounds.up.stabilization_seconds;
    let down_cutoff = now - bounds.down.stabilization_seconds;
    for rec in &history.recommendations {
        if rec.at > up_cutoff {
            up = up.min(rec.replicas);
        }
        if rec.at > down_cutoff {
            down = down.max(rec.replicas);
        }
    }
    let mut recommendation = current;
    if recommendation < up {
        recommendation = up;
    }
    if recommendation > down {
        recommendation = down;
    }
    let oldest = up_cutoff.min(down_cutoff);
    history.recommendations.retain(|r| r.at > oldest);
    history.recommendations.push(Recommendation {
        at: now,
        replicas: proposed,
    });
    recommendation
}

fn changes_in_period(events: &[ScaleEvent], period: i64, now: i64) -> i32 {
    let cutoff = now - period;
    events
        .iter()
        .filter(|e| e.at > cutoff)
        .map(|e| e.change)
        .sum()
}

/// Upstream's `calculateScaleUpLimitWithScalingRules`.
pub fn scale_up_limit(current: i32, history: &History, rules: &Rules, now: i64) -> i32 {
    if rules.select == SelectPolicy::Disabled {
        return current;
    }
    let mut result = match rules.select {
        SelectPolicy::Min => i32::MAX,
        _ => i32::MIN,
    };
    for policy in &rules.policies {
        let added = changes_in_period(&history.scale_ups, policy.period(), now);
        let deleted = changes_in_period(&history.scale_downs, policy.period(), now);
        let start = current - added + deleted;
        let proposed = match *policy {
            Policy::Pods { value, .. } => start.saturating_add(value),
            Policy::Percent { value, .. } => {
                ceil_replicas(f64::from(start) * (1.0 + f64::from(value) / 100.0))
            }
        };
        result = if rules.select == SelectPolicy::Min {
            result.min(proposed)
        } else {
            result.max(proposed)
        };
    }
    result
}

/// Upstream's `calculateScaleDownLimitWithBehaviors`.
pub fn scale_down_limit(current: i32, history: &History, rules: &Rules, now: i64) -> i32 {
    if rules.select == SelectPolicy::Disabled {
        return current;
    }
    let mut result = match rules.select {
        SelectPolicy::Min => i32::MIN,
        _ => i32::MAX,
    };
    for policy in &rules.policies {
        let added = changes_in_period(&history.scale_ups, policy.period(), now);
        let deleted = changes_in_period(&history.scale_downs, policy.period(), now);
        let start = current - added + deleted;
        let proposed = match *policy {
            Policy::Pods { value, .. } => start - value,
            Policy::Percent { value, .. } => {
                (f64::from(start) * (1.0 - f64::from(value) / 100.0)) as i32
            }
        };
        result = if rules.select == SelectPolicy::Min {
            result.max(proposed)
        } else {
            result.min(proposed)
        };
    }
    result
}

/// Upstream's `convertDesiredReplicasWithBehaviorRate`: the count after the rate policies and
/// min/max, with why it was limited.
pub fn limit_rate(
    current: i32,
    desired: i32,
    history: &History,
    bounds: &Bounds,
    now: i64,
) -> (i32, Limit) {
    let within = Limit {
        limited: false,
        reason: "DesiredWithinRange",
        message: "the desired count is within the acceptable range",
    };
    if desired > current {
        let rate = scale_up_limit(current, history, &bounds.up, now).max(current);
        let (maximum, limit) = if bounds.max <= rate {
            (
                bounds.max,
                Limit {
                    limited: true,
                    reason: "TooManyReplicas",
                    message: "the desired replica count is more than the maximum replica count",
                },
            )
        } else {
            (
                rate,
                Limit {
                    limited: true,
                    reason: "ScaleUpLimit",
                    message: "the desired replica count is increasing faster than the maximum scale rate",
                },
            )
        };
        if desired > maximum {
            return (maximum, limit);
        }
    } else if desired < current {
        let rate = scale_down_limit(current, history, &bounds.down, now).min(current);
        let (minimum, limit) = if bounds.min >= rate {
            (
                bounds.min,
                Limit {
                    limited: true,
                    reason: "TooFewReplicas",
                    message: "the desired replica count is less than the minimum replica count",
                },
            )
        } else {
            (
                rate,
                Limit {
                    limited: true,
                    reason: "ScaleDownLimit",
                    message: "the desired replica count is decreasing faster than the maximum scale rate",
                },
            )
        };
        if desired < minimum {
            return (minimum, limit);
        }
    }
    // Upstream also clamps to min/max when no rate rule applied.
    if desired > bounds.max {
        return (
            bounds.max,
            Limit {
                limited: true,
                reason: "TooManyReplicas",
                message: "the desired replica count is more than the maximum replica count",
            },
        );
    }
    if desired < bounds.min {
        return (
            bounds.min,
            Limit {
                limited: true,
                reason: "TooFewReplicas",
                message: "the desired replica count is less than the minimum replica count",
            },
        );
    }
    (desired, within)
}

/// Upstream's `normalizeDesiredReplicasWithBehaviors`: stabilization, then rate and bounds.
pub fn normalize(
    history: &mut History,
    current: i32,
    proposed: i32,
    bounds: &Bounds,
    now: i64,
) -> (i32, Limit) {
    let stabilized = stabilize(history, current, proposed, now, bounds);
    limit_rate(current, stabilized, history, bounds, now)
}

/// Records a scale from `from` to `to` at `now` (for the rate policies), dropping events older
/// than the longest policy period.
pub fn record_scale(history: &mut History, bounds: &Bounds, from: i32, to: i32, now: i64) {
    let longest = |rules: &Rules| rules.policies.iter().map(Policy::period).max().unwrap_or(0);
    let up_cutoff = now - longest(&bounds.up);
    let down_cutoff = now - longest(&bounds.down);
    history.scale_ups.retain(|e| e.at > up_cutoff);
    history.scale_downs.retain(|e| e.at > down_cutoff);
    if to > from {
        history.scale_ups.push(ScaleEvent {
            at: now,
            change: to - from,
        });
    } else if to < from {
        history.scale_downs.push(ScaleEvent {
            at: now,
            change: from - to,
        });
    }
}

#[cfg(test)]
mod tests;
