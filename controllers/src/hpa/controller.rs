//! The HPA loop: informer → keyed queue → [`HpaController::sync`], every HPA again after each
//! sync period.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::HpaConfig;
use super::replicas::{self, History, PodSample, Proposal, Target};
use super::spec::{self, ResourceMetric, Unsupported};
use crate::framework::events::{self, EventType};
use crate::framework::runner::run_workers;
use crate::framework::{Change, ObjectKey, Reconciler, Requeue, SharedInformers, WorkQueue};
use crate::{Error, Result};

/// Runs the HPA controller, with informers of its own, until `cancel` fires.
pub async fn run(client: Client, config: HpaConfig, cancel: CancellationToken) -> Result<()> {
    let informers = SharedInformers::new(client, &cancel);
    let result = run_with(&informers, config, cancel).await;
    informers.shutdown().await;
    result
}

/// Runs the HPA controller on `informers` (shared with the other controllers of the process) until
/// `cancel` fires.
pub async fn run_with(
    informers: &SharedInformers,
    config: HpaConfig,
    cancel: CancellationToken,
) -> Result<()> {
    let informer = informers.informer::<HorizontalPodAutoscaler>();
    let controller = HpaController {
        client: informers.client().clone(),
        hpas: informer.store(),
        queue: WorkQueue::default(),
        history: Mutex::new(HashMap::new()),
        start: Instant::now(),
        config,
    };
    let workers = async {
        tokio::select! {
            () = cancel.cancelled() => return Err(Error::CacheNotSynced("horizontalpodautoscaler")),
            ready = controller.hpas.wait_until_ready() => {
                ready.map_err(|_| Error::CacheNotSynced("horizontalpodautoscaler"))?;
            }
        }
        info!("hpa controller cache synced; starting workers");
        run_workers(
            &controller,
            &controller.queue,
            controller.config.workers,
            &cancel,
        )
        .await;
        Ok::<_, Error>(())
    };
    let (result, ()) = tokio::join!(
        workers,
        informer.run(|change| controller.on_change(change), &cancel),
    );
    controller.queue.shut_down();
    result
}

struct HpaController {
    client: Client,
    hpas: Store<HorizontalPodAutoscaler>,
    queue: WorkQueue<ObjectKey>,
    /// Recommendations and scale events per HPA (lost on restart, as upstream's).
    history: Mutex<HashMap<ObjectKey, History>>,
    start: Instant,
    config: HpaConfig,
}

impl Reconciler for HpaController {
    fn name(&self) -> &'static str {
        "horizontalpodautoscaler"
    }

    async fn sync(&self, key: &ObjectKey) -> Result<Requeue> {
        let Some(hpa) = self
            .hpas
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
        else {
            self.history.lock().remove(key);
            return Ok(Requeue::Never);
        };
        if hpa.metadata.deletion_timestamp.is_some() {
            return Ok(Requeue::Never);
        }
        self.reconcile(key, &hpa).await?;
        Ok(Requeue::After(self.config.sync_period))
    }
}

/// A condition as written into the status.
struct Condition {
    type_: &'static str,
    status: bool,
    reason: &'static str,
    message: String,
}

/// What one sync decided, for the status.
struct Outcome {
    current: i32,
    desired: i32,
    metrics: Vec<Value>,
    scaled: bool,
    conditions: Vec<Condition>,
}

impl HpaController {
    fn on_change(&self, change: Change<HorizontalPodAutoscaler>) {
        match change {
            Change::Added(hpa) => self.queue.add(ObjectKey::of(hpa.as_ref())),
            // Our own status writes come back as updates: only spec changes need a sync now.
            Change::Updated { old, new } => {
                if old.spec != new.spec
                    || old.metadata.deletion_timestamp != new.metadata.deletion_timestamp
                {
                    self.queue.add(ObjectKey::of(new.as_ref()));
                }
            }
            Change::Deleted(hpa) => {
                let key = ObjectKey::of(hpa.as_ref());
                self.history.lock().remove(&key);
                self.queue.add(key);
            }
        }
    }

    fn now(&self) -> i64 {
        i64::try_from(self.start.elapsed().as_secs()).unwrap_or(i64::MAX)
    }

    async fn reconcile(&self, key: &ObjectKey, hpa: &HorizontalPodAutoscaler) -> Result<()> {
        let Some(spec) = hpa.spec.as_ref() else {
            return Ok(());
        };
        let target = &spec.scale_target_ref;
        let group = target
            .api_version
            .as_deref()
            .map(|v| v.split('/').next().unwrap_or_default())
            .unwrap_or("apps");
        let scale_api = match (group, target.kind.as_str()) {
            ("apps", "Deployment") => {
                ScaleApi::Deployment(Api::namespaced(self.client.clone(), &key.namespace))
            }
            ("apps", "ReplicaSet") => {
                ScaleApi::ReplicaSet(Api::namespaced(self.client.clone(), &key.namespace))
            }
            _ => {
                let message = format!(
                    "the HPA controller was unable to get the target's current scale: {}/{} has no scale subresource Tugboat supports",
                    target.kind, target.name
                );
                self.event(hpa, "Warning", "FailedGetScale", &message).await;
                return self
                    .write_status(
                        key,
                        hpa,
                        Outcome {
                            current: hpa
                                .status
                                .as_ref()
                                .and_then(|s| s.current_replicas)
                                .unwrap_or(0),
                            desired: hpa.status.as_ref().map(|s| s.desired_replicas).unwrap_or(0),
                            metrics: Vec::new(),
                            scaled: false,
                            conditions: vec![Condition {
                                type_: "AbleToScale",
                                status: false,
                                reason: "FailedGetScale",
                                message,
                            }],
                        },
                    )
                    .await;
            }
        };
        let scale = match scale_api.get(&target.name).await {
            Ok(scale) => scale,
            Err(error) => {
                let message = format!(
                    "the HPA controller was unable to get the target's current scale: {error}"
                );
                self.event(hpa, "Warning", "FailedGetScale", &message).await;
                return self
                    .write_status(
                        key,
                        hpa,
                        Outcome {
                            current: 0,
                            desired: 0,
                            metrics: Vec::new(),
                            scaled: false,
                            conditions: vec![Condition {
                                type_: "AbleToScale",
                                status: false,
                                reason: "FailedGetScale",
                                message,
                            }],
                        },
                    )
                    .await;
            }
        };
        let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let selector = scale
            .status
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        let bounds = spec::bounds(
            spec,
            i64::try_from(self.config.downscale_stabilization.as_secs()).unwrap_or(i64::MAX),
        );
        let now = self.now();

        let mut conditions = Vec::new();
        let mut metric_statuses = Vec::new();
        let (desired, reason) = if current == 0 && bounds.min != 0 {
            conditions.push(Condition {
                type_: "ScalingActive",
                status: false,
                reason: "ScalingDisabled",
                message: "scaling is disabled since the replica count of the target is zero".into(),
            });
            (0, String::new())
        } else if current > bounds.max {
            (
                current.min(bounds.max),
                "Current number of replicas above Spec.MaxReplicas".into(),
            )
        } else if current < bounds.min {
            (
                bounds.min,
                "Current number of replicas below Spec.MinReplicas".into(),
            )
        } else {
            let computed = self.compute(key, spec, current, &selector).await;
            let (proposal, reason, statuses, invalid) = computed?;
            metric_statuses = statuses;
            match invalid {
                Some(bad) if proposal.is_none_or(|p| p <= current) => {
                    conditions.push(Condition {
                        type_: "ScalingActive",
                        status: false,
                        reason: bad.reason,
                        message: bad.message.clone(),
                    });
                    self.event(hpa, "Warning", bad.reason, &bad.message).await;
                    (current, String::new())
                }
                _ => {
                    let proposal = proposal.unwrap_or(current);
                    conditions.push(Condition {
                        type_: "ScalingActive",
                        status: true,
                        reason: "ValidMetricFound",
                        message: format!(
                            "the HPA was able to successfully calculate a replica count from {reason}"
                        ),
                    });
                    let mut history = self.history.lock();
                    let entry = history.entry(key.clone()).or_default();
                    let stabilized = replicas::stabilize(entry, current, proposal, now, &bounds);
                    let (desired, limit) =
                        replicas::limit_rate(current, stabilized, entry, &bounds, now);
                    let able = if stabilized != proposal {
                        if proposal > stabilized {
                            (
                                "ScaleUpStabilized",
                                "recent recommendations were lower than current one, applying the lowest recent recommendation",
                            )
                        } else {
                            (
                                "ScaleDownStabilized",
                                "recent recommendations were higher than current one, applying the highest recent recommendation",
                            )
                        }
                    } else {
                        ("ReadyForNewScale", "recommended size matches current size")
                    };
                    conditions.push(Condition {
                        type_: "AbleToScale",
                        status: true,
                        reason: able.0,
                        message: able.1.into(),
                    });
                    conditions.push(Condition {
                        type_: "ScalingLimited",
                        status: limit.limited,
                        reason: limit.reason,
                        message: limit.message.into(),
                    });
                    let reason = if desired > current {
                        format!("{reason} above target")
                    } else {
                        "All metrics below target".to_string()
                    };
                    (desired, reason)
                }
            }
        };

        let mut scaled = false;
        if desired != current && !(current == 0 && bounds.min != 0) {
            let patch = Patch::Merge(json!({"spec": {"replicas": desired}}));
            if let Err(error) = scale_api.patch(&target.name, &patch).await {
                let conflict = crate::error::kube_status_is(&error, 409);
                let message = format!("New size: {desired}; reason: {reason}; error: {error}");
                if !conflict {
                    self.event(hpa, "Warning", "FailedRescale", &message).await;
                }
                return Err(error.into());
            }
            replicas::record_scale(
                self.history.lock().entry(key.clone()).or_default(),
                &bounds,
                current,
                desired,
                now,
            );
            let message = format!("New size: {desired}; reason: {reason}");
            info!(hpa = %key, from = current, to = desired, %reason, "rescaled");
            self.event(hpa, "Normal", "SuccessfulRescale", &message)
                .await;
            conditions.retain(|c| c.type_ != "AbleToScale");
            conditions.push(Condition {
                type_: "AbleToScale",
                status: true,
                reason: "SucceededRescale",
                message: format!(
                    "the HPA controller was able to update the target scale to {desired}"
                ),
            });
            scaled = true;
        } else if !conditions.iter().any(|c| c.type_ == "AbleToScale") {
            conditions.push(Condition {
                type_: "AbleToScale",
                status: true,
                reason: "SucceededGetScale",
                message: "the HPA controller was able to get the target's current scale".into(),
            });
        }
        self.write_status(
            key,
            hpa,
            Outcome {
                current,
                desired,
                metrics: metric_statuses,
                scaled,
                conditions,
            },
        )
        .await
    }

    /// Proposals of every metric: the largest, the reason naming it, the metric statuses, and
    /// the first metric that could not be computed.
    async fn compute(
        &self,
        key: &ObjectKey,
        spec: &k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerSpec,
        current: i32,
        selector: &str,
    ) -> Result<(Option<i32>, String, Vec<Value>, Option<Unsupported>)> {
        let metrics = spec::metrics(spec);
        let mut invalid: Option<Unsupported> = None;
        let mut best: Option<(i32, String)> = None;
        let mut statuses = Vec::new();
        let wanted: Vec<ResourceMetric> = metrics
            .into_iter()
            .filter_map(|m| match m {
                Ok(m) => Some(m),
                Err(bad) => {
                    invalid.get_or_insert(bad);
                    None
                }
            })
            .collect();
        if selector.is_empty() {
            invalid = Some(Unsupported {
                reason: "InvalidSelector",
                message: "the HPA target's scale is missing a selector".into(),
            });
        }
        if wanted.is_empty() || selector.is_empty() {
            return Ok((None, String::new(), statuses, invalid));
        }
        let params = ListParams::default().labels(selector);
        let pods = Api::<Pod>::namespaced(self.client.clone(), &key.namespace)
            .list(&params)
            .await?;
        let resource = ApiResource {
            group: "metrics.k8s.io".into(),
            version: "v1beta1".into(),
            api_version: "metrics.k8s.io/v1beta1".into(),
            kind: "PodMetrics".into(),
            plural: "pods".into(),
        };
        let usage_list =
            Api::<DynamicObject>::namespaced_with(self.client.clone(), &key.namespace, &resource)
                .list(&params)
                .await?;
        let usage: HashMap<String, &Value> = usage_list
            .items
            .iter()
            .filter_map(|m| Some((m.metadata.name.clone()?, &m.data)))
            .collect();
        for metric in wanted {
            let samples: Vec<PodSample> = pods
                .items
                .iter()
                .map(|pod| {
                    sample(
                        pod,
                        &metric.resource,
                        usage
                            .get(pod.metadata.name.as_deref().unwrap_or_default())
                            .copied(),
                    )
                })
                .collect();
            let describe = match metric.target {
                Target::Utilization(_) => {
                    format!(
                        "{} resource utilization (percentage of request)",
                        metric.resource
                    )
                }
                Target::AverageValue(_) => format!("{} resource", metric.resource),
            };
            match replicas::propose(
                current,
                &samples,
                metric.target,
                &metric.resource,
                self.config.tolerance,
            ) {
                Ok(Proposal {
                    replicas,
                    utilization,
                    average,
                }) => {
                    let mut current_value = json!({"averageValue": spec::format_milli(average)});
                    if let Some(u) = utilization {
                        current_value["averageUtilization"] = json!(u);
                    }
                    statuses.push(json!({
                        "type": "Resource",
                        "resource": {"name": metric.resource, "current": current_value},
                    }));
                    if best.as_ref().is_none_or(|(r, _)| replicas > *r) {
                        best = Some((replicas, describe));
                    }
                }
                Err(error) => {
                    debug!(hpa = %key, %error, "cannot compute a metric");
                    invalid.get_or_insert(Unsupported {
                        reason: "FailedGetResourceMetric",
                        message: format!(
                            "the HPA was unable to compute the replica count: failed to get {} utilization: {error}",
                            metric.resource
                        ),
                    });
                }
            }
        }
        let (proposal, reason) = match best {
            Some((r, why)) => (Some(r), why),
            None => (None, String::new()),
        };
        Ok((proposal, reason, statuses, invalid))
    }

    async fn write_status(
        &self,
        key: &ObjectKey,
        hpa: &HorizontalPodAutoscaler,
        outcome: Outcome,
    ) -> Result<()> {
        let old = hpa.status.as_ref();
        let now = Time(Timestamp::now());
        let old_conditions: BTreeMap<&str, _> = old
            .and_then(|s| s.conditions.as_ref())
            .map(|cs| cs.iter().map(|c| (c.type_.as_str(), c)).collect())
            .unwrap_or_default();
        // Upstream's order, which `kubectl describe hpa` shows as is.
        let mut ordered: Vec<&Condition> = outcome.conditions.iter().collect();
        ordered.sort_by_key(|c| match c.type_ {
            "AbleToScale" => 0,
            "ScalingActive" => 1,
            _ => 2,
        });
        let conditions: Vec<Value> = ordered
            .into_iter()
            .map(|c| {
                let status = if c.status { "True" } else { "False" };
                let since = old_conditions
                    .get(c.type_)
                    .filter(|old| old.status == status)
                    .and_then(|old| old.last_transition_time.clone())
                    .unwrap_or_else(|| now.clone());
                json!({
                    "type": c.type_,
                    "status": status,
                    "reason": c.reason,
                    "message": c.message,
                    "lastTransitionTime": since,
                })
            })
            .collect();
        let last_scale = if outcome.scaled {
            Some(now.clone())
        } else {
            old.and_then(|s| s.last_scale_time.clone())
        };
        let status = json!({
            "observedGeneration": hpa.metadata.generation,
            "currentReplicas": outcome.current,
            "desiredReplicas": outcome.desired,
            "currentMetrics": outcome.metrics,
            "lastScaleTime": last_scale,
            "conditions": conditions,
        });
        let before = serde_json::to_value(old).unwrap_or(Value::Null);
        if same_status(&before, &status) {
            return Ok(());
        }
        Api::<HorizontalPodAutoscaler>::namespaced(self.client.clone(), &key.namespace)
            .patch_status(
                &key.name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await?;
        Ok(())
    }

    async fn event(&self, hpa: &HorizontalPodAutoscaler, type_: &str, reason: &str, message: &str) {
        let type_ = if type_ == "Warning" {
            EventType::Warning
        } else {
            EventType::Normal
        };
        events::record(
            &self.client,
            "horizontal-pod-autoscaler",
            hpa,
            type_,
            reason,
            message,
        )
        .await;
    }
}

/// Whether two statuses say the same (ignoring absent fields in the old one's serialization).
fn same_status(before: &Value, after: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        match v {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(_, v)| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            other => other.clone(),
        }
    };
    strip(before) == strip(after)
}

/// One pod in the calculation's terms for `resource`.
fn sample(pod: &Pod, resource: &str, metrics: Option<&Value>) -> PodSample {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let mut request = Some(0i64);
    for c in containers {
        let value = c
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get(resource))
            .and_then(|q| spec::milli(&q.0));
        request = match (request, value) {
            (Some(total), Some(v)) => Some(total.saturating_add(v)),
            _ => None,
        };
    }
    let usage = metrics.and_then(|m| {
        let containers = m.get("containers")?.as_array()?;
        let mut total = 0i64;
        for c in containers {
            let value = c.get("usage")?.get(resource)?.as_str()?;
            total = total.saturating_add(spec::milli(value)?);
        }
        Some(total)
    });
    PodSample {
        name: pod.metadata.name.clone().unwrap_or_default(),
        unready: phase == "Pending" || !ready,
        ignored: pod.metadata.deletion_timestamp.is_some()
            || phase == "Failed"
            || phase == "Succeeded",
        request,
        usage,
    }
}

/// The target's `scale` subresource.
enum ScaleApi {
    Deployment(Api<Deployment>),
    ReplicaSet(Api<ReplicaSet>),
}

impl ScaleApi {
    async fn get(&self, name: &str) -> Result<Scale, kube::Error> {
        match self {
            ScaleApi::Deployment(api) => api.get_scale(name).await,
            ScaleApi::ReplicaSet(api) => api.get_scale(name).await,
        }
    }

    async fn patch(&self, name: &str, patch: &Patch<Value>) -> Result<Scale, kube::Error> {
        let params = PatchParams::default();
        match self {
            ScaleApi::Deployment(api) => api.patch_scale(name, &params, patch).await,
            ScaleApi::ReplicaSet(api) => api.patch_scale(name, &params, patch).await,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn samples_from_pods_and_metrics() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "a"},
            "spec": {"containers": [
                {"name": "x", "resources": {"requests": {"cpu": "100m"}}},
                {"name": "y", "resources": {"requests": {"cpu": "200m"}}},
            ]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        }))
        .unwrap();
        let metrics = json!({"containers": [
            {"name": "x", "usage": {"cpu": "50000000n", "memory": "1Ki"}},
            {"name": "y", "usage": {"cpu": "100m", "memory": "1Ki"}},
        ]});
        let s = sample(&pod, "cpu", Some(&metrics));
        assert_eq!(
            (s.request, s.usage, s.unready, s.ignored),
            (Some(300), Some(150), false, false)
        );
        let s = sample(&pod, "memory", None);
        assert_eq!((s.request, s.usage), (None, None));
    }

    #[test]
    fn status_comparison_ignores_absent_fields() {
        let a = json!({"currentReplicas": 1, "desiredReplicas": 1, "currentMetrics": null});
        let b = json!({"currentReplicas": 1, "desiredReplicas": 1, "currentMetrics": [], "lastScaleTime": null});
        assert!(same_status(&a, &b));
        assert!(!same_status(
            &a,
            &json!({"currentReplicas": 2, "desiredReplicas": 1})
        ));
    }
}
