//! Pod status from what the agent observed: phase, conditions, IPs and container statuses,
//! computed the way the kubelet does. Pure: the sync loop gathers the facts, this shapes them.

use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// Seconds-precision API time of `t` (what the API keeps, so comparisons stay stable).
pub fn api_time(t: SystemTime) -> Time {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Time(Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    /// Exit code.
    pub exit_code: i32,
    /// `Completed`, `Error`, `OOMKilled`, ...
    pub reason: String,
    /// Details.
    pub message: String,
    /// Start time.
    pub started_at: Option<SystemTime>,
    /// Exit time.
    pub finished_at: Option<SystemTime>,
    /// Runtime ID.
    pub container_id: String,
}

impl Terminated {
    /// Reason from the exit code when the runtime gave none.
    pub fn reason_for(exit_code: i32, runtime_reason: &str) -> String {
        match runtime_reason {
            "" if exit_code == 0 => "Completed".to_string(),
            "" => "Error".to_string(),
            other => other.to_string(),
        }
    }

    fn api(&self, scheme: &str) -> ContainerStateTerminated {
        ContainerStateTerminated {
            exit_code: self.exit_code,
            reason: Some(self.reason.clone()),
            message: (!self.message.is_empty()).then(|| self.message.clone()),
            started_at: self.started_at.map(api_time),
            finished_at: self.finished_at.map(api_time),
            container_id: Some(format!("{scheme}://{}", self.container_id)),
            signal: None,
        }
    }
}

/// A container's current state as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// Not running: being created, backing off, image trouble.
    Waiting {
        /// `ContainerCreating`, `PodInitializing`, `CrashLoopBackOff`, `ErrImagePull`, ...
        reason: String,
        /// Details.
        message: String,
    },
    /// Running since.
    Running {
        /// Runtime ID.
        container_id: String,
        /// Start time.
        started_at: Option<SystemTime>,
    },
    /// Exited and not (yet) restarted.
    Terminated(Terminated),
}

/// What the agent knows about one container of the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerView {
    /// Name in the spec.
    pub name: String,
    /// Image in the spec.
    pub image: String,
    /// The runtime's image reference, once created.
    pub image_id: String,
    /// Current state.
    pub state: Observed,
    /// The previous run's end, if it ran before.
    pub last_terminated: Option<Terminated>,
    /// Restarts so far.
    pub restart_count: i32,
    /// Readiness (probe, or running when there is none).
    pub ready: bool,
    /// Started (startup probe passed, or running when there is none).
    pub started: bool,
}

/// What the agent knows about the whole pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodView {
    /// The sandbox's IP.
    pub pod_ip: Option<String>,
    /// The node's IP.
    pub host_ip: Option<String>,
    /// Scheme of container IDs (`containerd`).
    pub runtime_scheme: String,
    /// Init containers, in spec order (only those known so far).
    pub init_containers: Vec<ContainerView>,
    /// App containers, in spec order.
    pub containers: Vec<ContainerView>,
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

fn is_succeeded(c: &ContainerView) -> bool {
    matches!(&c.state, Observed::Terminated(t) if t.exit_code == 0)
}

/// The pod's phase (the kubelet's `getPhase`).
pub fn phase(pod: &Pod, view: &PodView) -> &'static str {
    let policy = restart_policy(pod);
    let init_count = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .map_or(0, Vec::len);
    if view.init_containers.len() < init_count || !view.init_containers.iter().all(is_succeeded) {
        let failed_for_good = policy == "Never"
            && view
                .init_containers
                .iter()
                .any(|c| matches!(&c.state, Observed::Terminated(t) if t.exit_code != 0));
        return if failed_for_good { "Failed" } else { "Pending" };
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in &view.containers {
        match &c.state {
            Observed::Running { .. } => running += 1,
            Observed::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            // Waiting to restart counts as stopped: it has run.
            Observed::Waiting { .. } if c.last_terminated.is_some() => stopped += 1,
            Observed::Waiting { .. } => waiting += 1,
        }
    }
    if waiting > 0 || view.containers.is_empty() {
        "Pending"
    } else if running > 0 || policy == "Always" {
        "Running"
    } else if stopped == succeeded && stopped > 0 {
        "Succeeded"
    } else if policy == "Never" {
        "Failed"
    } else {
        "Running"
    }
}

fn condition(
    kind: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    old: Option<&PodStatus>,
    now: &Time,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let previous = old
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == kind));
    // The transition time moves only when the status does.
    let last_transition_time = match previous {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Some(now.clone()),
    };
    PodCondition {
        type_: kind.to_string(),
        status: status.to_string(),
        reason: if ok { None } else { reason.map(str::to_string) },
        message: if ok { None } else { message },
        last_transition_time,
        last_probe_time: None,
    }
}

fn container_status(c: &ContainerView, scheme: &str) -> ContainerStatus {
    let (state, container_id) = match &c.state {
        Observed::Waiting { reason, message } => (
            ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.clone()),
                    message: (!message.is_empty()).then(|| message.clone()),
                }),
                ..Default::default()
            },
            None,
        ),
        Observed::Running {
            container_id,
            started_at,
        } => (
            ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: started_at.map(api_time),
                }),
                ..Default::default()
            },
            Some(format!("{scheme}://{container_id}")),
        ),
        Observed::Terminated(t) => (
            ContainerState {
                terminated: Some(t.api(scheme)),
                ..Default::default()
            },
            Some(format!("{scheme}://{}", t.container_id)),
        ),
    };
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: c.image_id.clone(),
        container_id,
        ready: c.ready,
        started: Some(c.started),
        restart_count: c.restart_count,
        state: Some(state),
        last_state: Some(
            c.last_terminated
                .as_ref()
                .map(|t| ContainerState {
                    terminated: Some(t.api(scheme)),
                    ..Default::default()
                })
                .unwrap_or_default(),
        ),
        ..Default::default()
    }
}

fn names_where(cs: &[ContainerView], pred: impl Fn(&ContainerView) -> bool) -> Vec<&str> {
    cs.iter()
        .filter(|c| pred(c))
        .map(|c| c.name.as_str())
        .collect()
}

/// The status to write for `pod` given `view`, at `now`. Fields the agent does not own
/// (qosClass, nominatedNodeName, ...) are kept from the current status.
pub fn compute(pod: &Pod, view: &PodView, now: SystemTime) -> PodStatus {
    let old = pod.status.as_ref();
    let now_time = api_time(now);
    let phase = phase(pod, view);
    let scheme = view.runtime_scheme.as_str();

    let spec_inits: Vec<&str> = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .map(|cs| cs.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    let unfinished_inits: Vec<&str> = spec_inits
        .iter()
        .copied()
        .filter(|name| {
            !view
                .init_containers
                .iter()
                .any(|c| c.name == *name && is_succeeded(c))
        })
        .collect();
    let initialized = unfinished_inits.is_empty() || phase == "Succeeded";
    let unready = names_where(&view.containers, |c| !c.ready);
    let containers_ready = unready.is_empty() && !view.containers.is_empty();
    let completed = phase == "Succeeded" || phase == "Failed";
    let (ready_reason, ready_message) = if completed {
        ("PodCompleted", None)
    } else {
        (
            "ContainersNotReady",
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };

    let conditions = vec![
        condition("PodScheduled", true, None, None, old, &now_time),
        condition(
            "Initialized",
            initialized,
            Some(if completed {
                "PodCompleted"
            } else {
                "ContainersNotInitialized"
            }),
            Some(format!(
                "containers with incomplete status: [{}]",
                unfinished_inits.join(" ")
            )),
            old,
            &now_time,
        ),
        condition(
            "ContainersReady",
            containers_ready && !completed,
            Some(ready_reason),
            ready_message.clone(),
            old,
            &now_time,
        ),
        condition(
            "Ready",
            containers_ready && !completed,
            Some(ready_reason),
            ready_message,
            old,
            &now_time,
        ),
    ];

    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        host_ip: view.host_ip.clone(),
        host_ips: view.host_ip.clone().map(|ip| vec![HostIP { ip }]),
        pod_ip: view.pod_ip.clone(),
        pod_ips: view.pod_ip.clone().map(|ip| vec![PodIP { ip }]),
        start_time: old.and_then(|s| s.start_time.clone()).or(Some(now_time)),
        init_container_statuses: (!spec_inits.is_empty()).then(|| {
            view.init_containers
                .iter()
                .map(|c| container_status(c, scheme))
                .collect()
        }),
        container_statuses: Some(
            view.containers
                .iter()
                .map(|c| container_status(c, scheme))
                .collect(),
        ),
        qos_class: old.and_then(|s| s.qos_class.clone()),
        nominated_node_name: old.and_then(|s| s.nominated_node_name.clone()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use k8s_openapi::api::core::v1::{Container, PodSpec};

    use super::*;

    fn pod(policy: &str, inits: &[&str], apps: &[&str]) -> Pod {
        let containers = |names: &[&str]| -> Vec<Container> {
            names
                .iter()
                .map(|n| Container {
                    name: n.to_string(),
                    image: Some("busybox".into()),
                    ..Default::default()
                })
                .collect()
        };
        Pod {
            spec: Some(PodSpec {
                restart_policy: Some(policy.into()),
                init_containers: (!inits.is_empty()).then(|| containers(inits)),
                containers: containers(apps),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn view(name: &str, state: Observed, ready: bool) -> ContainerView {
        ContainerView {
            name: name.into(),
            image: "busybox".into(),
            image_id: "sha256:1".into(),
            state,
            last_terminated: None,
            restart_count: 0,
            ready,
            started: ready,
        }
    }

    fn running() -> Observed {
        Observed::Running {
            container_id: "abc".into(),
            started_at: Some(UNIX_EPOCH + Duration::from_secs(100)),
        }
    }

    fn exited(code: i32) -> Observed {
        Observed::Terminated(Terminated {
            exit_code: code,
            reason: Terminated::reason_for(code, ""),
            message: String::new(),
            started_at: None,
            finished_at: None,
            container_id: "abc".into(),
        })
    }

    fn waiting(reason: &str) -> Observed {
        Observed::Waiting {
            reason: reason.into(),
            message: String::new(),
        }
    }

    fn pod_view(inits: Vec<ContainerView>, apps: Vec<ContainerView>) -> PodView {
        PodView {
            pod_ip: Some("10.0.0.2".into()),
            host_ip: Some("192.0.2.1".into()),
            runtime_scheme: "containerd".into(),
            init_containers: inits,
            containers: apps,
        }
    }

    fn cond<'a>(s: &'a PodStatus, kind: &str) -> &'a PodCondition {
        s.conditions
            .as_ref()
            .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
            .expect("condition")
    }

    #[test]
    fn phases_follow_the_kubelet() {
        let p = pod("Always", &[], &["a"]);
        assert_eq!(
            phase(
                &p,
                &pod_view(vec![], vec![view("a", waiting("ContainerCreating"), false)])
            ),
            "Pending"
        );
        assert_eq!(
            phase(&p, &pod_view(vec![], vec![view("a", running(), true)])),
            "Running"
        );
        assert_eq!(
            phase(&p, &pod_view(vec![], vec![view("a", exited(1), false)])),
            "Running"
        );
        let never = pod("Never", &[], &["a", "b"]);
        let done = pod_view(
            vec![],
            vec![view("a", exited(0), false), view("b", exited(0), false)],
        );
        assert_eq!(phase(&never, &done), "Succeeded");
        let failed = pod_view(
            vec![],
            vec![view("a", exited(0), false), view("b", exited(2), false)],
        );
        assert_eq!(phase(&never, &failed), "Failed");
        assert_eq!(
            phase(&pod("OnFailure", &[], &["a", "b"]), &failed),
            "Running"
        );
        let mut backing_off = view("a", waiting("CrashLoopBackOff"), false);
        backing_off.last_terminated = Some(Terminated {
            exit_code: 1,
            reason: "Error".into(),
            message: String::new(),
            started_at: None,
            finished_at: None,
            container_id: "x".into(),
        });
        assert_eq!(phase(&p, &pod_view(vec![], vec![backing_off])), "Running");
    }

    #[test]
    fn init_containers_gate_the_pod() {
        let p = pod("Always", &["setup"], &["a"]);
        let v = pod_view(vec![view("setup", running(), false)], vec![]);
        assert_eq!(phase(&p, &v), "Pending");
        let s = compute(&p, &v, SystemTime::now());
        assert_eq!(cond(&s, "Initialized").status, "False");
        assert_eq!(
            cond(&s, "Initialized").message.as_deref(),
            Some("containers with incomplete status: [setup]")
        );
        let never = pod("Never", &["setup"], &["a"]);
        assert_eq!(
            phase(
                &never,
                &pod_view(vec![view("setup", exited(1), false)], vec![])
            ),
            "Failed"
        );
        let ok = pod_view(
            vec![view("setup", exited(0), false)],
            vec![view("a", running(), true)],
        );
        let s = compute(&p, &ok, SystemTime::now());
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(cond(&s, "Initialized").status, "True");
        assert_eq!(s.init_container_statuses.as_ref().map(Vec::len), Some(1));
    }

    #[test]
    fn ready_conditions_and_container_statuses() {
        let p = pod("Always", &[], &["a", "b"]);
        let v = pod_view(
            vec![],
            vec![view("a", running(), true), view("b", running(), false)],
        );
        let s = compute(&p, &v, SystemTime::now());
        assert_eq!(cond(&s, "PodScheduled").status, "True");
        assert_eq!(cond(&s, "Ready").status, "False");
        assert_eq!(
            cond(&s, "Ready").reason.as_deref(),
            Some("ContainersNotReady")
        );
        assert_eq!(
            cond(&s, "ContainersReady").message.as_deref(),
            Some("containers with unready status: [b]")
        );
        assert_eq!(s.pod_ip.as_deref(), Some("10.0.0.2"));
        assert_eq!(s.pod_ips.as_ref().map(Vec::len), Some(1));
        assert_eq!(s.host_ip.as_deref(), Some("192.0.2.1"));
        let a = &s.container_statuses.as_ref().expect("statuses")[0];
        assert_eq!(a.container_id.as_deref(), Some("containerd://abc"));
        assert!(a.ready);
        assert_eq!(a.started, Some(true));
        assert!(
            a.state
                .as_ref()
                .and_then(|st| st.running.as_ref())
                .is_some()
        );
    }

    #[test]
    fn unchanged_status_keeps_its_times_so_nothing_is_rewritten() {
        let mut p = pod("Always", &[], &["a"]);
        let v = pod_view(vec![], vec![view("a", running(), true)]);
        let first = compute(&p, &v, UNIX_EPOCH + Duration::from_secs(1000));
        p.status = Some(first.clone());
        let again = compute(&p, &v, UNIX_EPOCH + Duration::from_secs(2000));
        assert_eq!(first, again);
        // A flip moves only that condition's time.
        let unready = pod_view(vec![], vec![view("a", running(), false)]);
        let later = compute(&p, &unready, UNIX_EPOCH + Duration::from_secs(3000));
        assert_ne!(
            cond(&later, "Ready").last_transition_time,
            cond(&first, "Ready").last_transition_time
        );
        assert_eq!(
            cond(&later, "PodScheduled").last_transition_time,
            cond(&first, "PodScheduled").last_transition_time
        );
    }

    #[test]
    fn terminated_reasons_come_from_exit_codes() {
        assert_eq!(Terminated::reason_for(0, ""), "Completed");
        assert_eq!(Terminated::reason_for(137, ""), "Error");
        assert_eq!(Terminated::reason_for(137, "OOMKilled"), "OOMKilled");
        let p = pod("Never", &[], &["a"]);
        let s = compute(
            &p,
            &pod_view(vec![], vec![view("a", exited(3), false)]),
            SystemTime::now(),
        );
        let t = s.container_statuses.as_ref().expect("statuses")[0]
            .state
            .as_ref()
            .and_then(|st| st.terminated.clone())
            .expect("terminated");
        assert_eq!((t.exit_code, t.reason.as_deref()), (3, Some("Error")));
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("PodCompleted"));
    }
}
