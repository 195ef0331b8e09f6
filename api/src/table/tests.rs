//! Table rows for realistic objects, compared with what kube-apiserver 1.32 prints.

use super::*;
use crate::resources::Registry;
use k8s_openapi::jiff::ToSpan;
use std::time::Duration;

fn now() -> Timestamp {
    "2025-06-01T12:00:00Z".parse().unwrap()
}

/// `now` minus `seconds`, as an RFC 3339 string.
fn ago(seconds: i64) -> String {
    now()
        .checked_sub(seconds.seconds())
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn cells(group: &str, resource: &str, object: &Value) -> Vec<Value> {
    row(group, resource, object, now(), IncludeObject::None).cells
}

fn running_pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-7d4b9c-x2x4z", "namespace": "default", "creationTimestamp": ago(200), "uid": "u1"},
        "spec": {"nodeName": "node-1", "containers": [{"name": "web", "image": "busybox"}]},
        "status": {
            "phase": "Running",
            "podIP": "10.244.0.5",
            "podIPs": [{"ip": "10.244.0.5"}],
            "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": "True"},
                {"type": "PodScheduled", "status": "True"}
            ],
            "containerStatuses": [{
                "name": "web", "ready": true, "restartCount": 0, "started": true,
                "state": {"running": {"startedAt": ago(190)}}
            }]
        }
    })
}

#[test]
fn human_duration_matches_apimachinery() {
    for (seconds, want) in [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (5, "5s"),
        (119, "119s"),
        (120, "2m"),
        (200, "3m20s"),
        (600, "10m"),
        (179 * 60, "179m"),
        (3 * 3600, "3h"),
        (5 * 3600 + 3 * 60, "5h3m"),
        (47 * 3600, "47h"),
        (51 * 3600, "2d3h"),
        (7 * 86400, "7d"),
        (45 * 86400, "45d"),
        (2 * 365 * 86400 + 30 * 86400, "2y30d"),
        (9 * 365 * 86400, "9y"),
    ] {
        assert_eq!(
            human_duration(SignedDuration::from_secs(seconds)),
            want,
            "{seconds}s"
        );
    }
}

#[test]
fn system_times_convert_to_timestamps() {
    let at = UNIX_EPOCH + Duration::from_secs(1_748_779_200);
    assert_eq!(timestamp_of(at), now());
    let before = UNIX_EPOCH - Duration::from_secs(60);
    assert_eq!(timestamp_of(before).as_second(), -60);
}

#[test]
fn running_pod_row() {
    let table = table("", "pods", [&running_pod()], now(), IncludeObject::None);
    let names: Vec<&str> = table
        .column_definitions
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP",
            "Node",
            "Nominated Node",
            "Readiness Gates"
        ]
    );
    let priorities: Vec<i32> = table
        .column_definitions
        .iter()
        .map(|c| c.priority)
        .collect();
    assert_eq!(priorities, [0, 0, 0, 0, 0, 1, 1, 1, 1]);
    assert_eq!(
        table.rows[0].cells,
        vec![
            json!("web-7d4b9c-x2x4z"),
            json!("1/1"),
            json!("Running"),
            json!("0"),
            json!("3m20s"),
            json!("10.244.0.5"),
            json!("node-1"),
            json!("<none>"),
            json!("<none>"),
        ]
    );
    assert!(table.rows[0].conditions.is_empty());
}

#[test]
fn crash_looping_pod_row() {
    let pod = json!({
        "metadata": {"name": "crasher", "creationTimestamp": ago(3600)},
        "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "busybox"}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "False"}],
            "containerStatuses": [{
                "name": "app", "ready": false, "restartCount": 5,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 2m40s"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(300)}}
            }]
        }
    });
    let row = cells("", "pods", &pod);
    assert_eq!(row[1], "0/1");
    assert_eq!(row[2], "CrashLoopBackOff");
    assert_eq!(row[3], "5 (5m ago)");
    assert_eq!(row[4], "60m");
    assert_eq!(row[5], "<none>");
}

#[test]
fn terminating_pod_row() {
    let mut pod = running_pod();
    pod["metadata"]["deletionTimestamp"] = json!(ago(10));
    assert_eq!(cells("", "pods", &pod)[2], "Terminating");
    // A pod on a lost node shows Unknown instead.
    pod["status"]["reason"] = json!("NodeLost");
    assert_eq!(cells("", "pods", &pod)[2], "Unknown");
    // Finished pods stay as they finished.
    let mut done = running_pod();
    done["metadata"]["deletionTimestamp"] = json!(ago(10));
    done["status"]["phase"] = json!("Succeeded");
    done["status"]["containerStatuses"][0]["state"] =
        json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
    assert_eq!(cells("", "pods", &done)[2], "Completed");
}

#[test]
fn completed_pod_row_has_completed_condition() {
    let pod = json!({
        "metadata": {"name": "job-abc", "creationTimestamp": ago(60)},
        "spec": {"containers": [{"name": "main"}]},
        "status": {
            "phase": "Succeeded",
            "containerStatuses": [{
                "name": "main", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}
            }]
        }
    });
    let row = row("", "pods", &pod, now(), IncludeObject::None);
    assert_eq!(row.cells[1], "0/1");
    assert_eq!(row.cells[2], "Completed");
    assert_eq!(row.conditions.len(), 1);
    assert_eq!(row.conditions[0].condition_type, "Completed");
    assert_eq!(row.conditions[0].reason, "Succeeded");
}

#[test]
fn pod_statuses_from_container_states() {
    let base = |status: Value| {
        json!({
            "metadata": {"name": "p", "creationTimestamp": ago(5)},
            "spec": {"containers": [{"name": "a"}], "initContainers": [{"name": "init"}]},
            "status": status
        })
    };
    let pending = base(json!({"phase": "Pending"}));
    assert_eq!(cells("", "pods", &pending)[2], "Pending");
    let init_running = base(json!({
        "phase": "Pending",
        "initContainerStatuses": [{"name": "init", "restartCount": 0, "state": {"running": {}}}]
    }));
    assert_eq!(cells("", "pods", &init_running)[2], "Init:0/1");
    let init_crash = base(json!({
        "phase": "Pending",
        "initContainerStatuses": [{"name": "init", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]
    }));
    let row = cells("", "pods", &init_crash);
    assert_eq!(row[2], "Init:CrashLoopBackOff");
    assert_eq!(row[3], "3");
    let init_failed = base(json!({
        "phase": "Pending",
        "initContainerStatuses": [{"name": "init", "state": {"terminated": {"exitCode": 2}}}]
    }));
    assert_eq!(cells("", "pods", &init_failed)[2], "Init:ExitCode:2");
    let pulling = base(json!({
        "phase": "Pending",
        "conditions": [{"type": "Initialized", "status": "True"}],
        "initContainerStatuses": [{"name": "init", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
        "containerStatuses": [{"name": "a", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]
    }));
    assert_eq!(cells("", "pods", &pulling)[2], "ImagePullBackOff");
    let killed = base(json!({
        "phase": "Running",
        "containerStatuses": [{"name": "a", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]
    }));
    assert_eq!(cells("", "pods", &killed)[2], "Signal:9");
    let gated = json!({
        "metadata": {"name": "g"},
        "spec": {"containers": [{"name": "a"}]},
        "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}
    });
    assert_eq!(cells("", "pods", &gated)[2], "SchedulingGated");
    assert_eq!(cells("", "pods", &gated)[4], "<unknown>");
}

#[test]
fn sidecars_count_as_containers() {
    let pod = json!({
        "metadata": {"name": "p"},
        "spec": {
            "initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
            "containers": [{"name": "app"}]
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
            "initContainerStatuses": [{"name": "proxy", "started": true, "ready": true, "restartCount": 1, "state": {"running": {}}}],
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}}]
        }
    });
    let row = cells("", "pods", &pod);
    assert_eq!(row[1], "2/2");
    assert_eq!(row[2], "Running");
    assert_eq!(row[3], "1");
}

#[test]
fn readiness_gates_are_counted() {
    let mut pod = running_pod();
    pod["spec"]["readinessGates"] =
        json!([{"conditionType": "example.com/lb"}, {"conditionType": "example.com/dns"}]);
    pod["status"]["conditions"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "example.com/lb", "status": "True"}));
    assert_eq!(cells("", "pods", &pod)[8], "1/2");
}

#[test]
fn deployment_mid_rollout_row() {
    let deployment = json!({
        "metadata": {"name": "web", "creationTimestamp": ago(2 * 86400 + 3 * 3600)},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [
                {"name": "web", "image": "busybox:1.36"},
                {"name": "sidecar", "image": "busybox"}
            ]}}
        },
        "status": {"replicas": 4, "updatedReplicas": 1, "readyReplicas": 2, "availableReplicas": 2}
    });
    let table = table(
        "apps",
        "deployments",
        [&deployment],
        now(),
        IncludeObject::None,
    );
    let names: Vec<&str> = table
        .column_definitions
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    assert_eq!(
        table.rows[0].cells,
        vec![
            json!("web"),
            json!("2/3"),
            json!(1),
            json!(2),
            json!("2d3h"),
            json!("web,sidecar"),
            json!("busybox:1.36,busybox"),
            json!("app=web"),
        ]
    );
}

#[test]
fn replica_set_and_stateful_set_rows() {
    let rs = json!({
        "metadata": {"name": "web-7d4b9c", "creationTimestamp": ago(30)},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web", "pod-template-hash": "7d4b9c"}},
            "template": {"spec": {"containers": [{"name": "web", "image": "busybox"}]}}
        },
        "status": {"replicas": 2, "readyReplicas": 1}
    });
    assert_eq!(
        cells("apps", "replicasets", &rs),
        vec![
            json!("web-7d4b9c"),
            json!(2),
            json!(2),
            json!(1),
            json!("30s"),
            json!("web"),
            json!("busybox"),
            json!("app=web,pod-template-hash=7d4b9c"),
        ]
    );
    let sts = json!({"metadata": {"name": "db"}, "spec": {"replicas": 3}, "status": {"readyReplicas": 3}});
    assert_eq!(cells("apps", "statefulsets", &sts)[1], "3/3");
}

#[test]
fn node_port_service_row() {
    let service = json!({
        "metadata": {"name": "web", "creationTimestamp": ago(45)},
        "spec": {
            "type": "NodePort",
            "clusterIP": "10.96.12.34",
            "clusterIPs": ["10.96.12.34"],
            "selector": {"app": "web"},
            "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"}]
        }
    });
    let table = table("", "services", [&service], now(), IncludeObject::None);
    let names: Vec<&str> = table
        .column_definitions
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "Name",
            "Type",
            "Cluster-IP",
            "External-IP",
            "Port(s)",
            "Age",
            "Selector"
        ]
    );
    assert_eq!(
        table.rows[0].cells,
        vec![
            json!("web"),
            json!("NodePort"),
            json!("10.96.12.34"),
            json!("<none>"),
            json!("80:30080/TCP"),
            json!("45s"),
            json!("app=web"),
        ]
    );
}

#[test]
fn other_service_types() {
    let headless = json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}});
    let row = cells("", "services", &headless);
    assert_eq!(row[1], "ClusterIP");
    assert_eq!(row[2], "None");
    assert_eq!(row[4], "5432/TCP");
    assert_eq!(row[6], "<none>");
    let pending_lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.0.9"]}});
    let row = cells("", "services", &pending_lb);
    assert_eq!(row[3], "<pending>");
    assert_eq!(row[4], "<none>");
    let lb = json!({
        "metadata": {"name": "lb"},
        "spec": {"type": "LoadBalancer", "externalIPs": ["1.2.3.4"]},
        "status": {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "lb.example.com"}]}}
    });
    assert_eq!(
        cells("", "services", &lb)[3],
        "5.6.7.8,lb.example.com,1.2.3.4"
    );
    let external = json!({"metadata": {"name": "ext"}, "spec": {"type": "ExternalName", "externalName": "example.com"}});
    assert_eq!(cells("", "services", &external)[3], "example.com");
}

#[test]
fn ready_node_row() {
    let node = json!({
        "metadata": {
            "name": "node-1",
            "creationTimestamp": ago(10 * 86400),
            "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/hostname": "node-1"}
        },
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True"}
            ],
            "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}, {"type": "Hostname", "address": "node-1"}],
            "nodeInfo": {
                "kubeletVersion": "v1.32.0-tugboat",
                "osImage": "Debian GNU/Linux 13 (trixie)",
                "kernelVersion": "6.12.0",
                "containerRuntimeVersion": "containerd://2.0.0"
            }
        }
    });
    assert_eq!(
        cells("", "nodes", &node),
        vec![
            json!("node-1"),
            json!("Ready"),
            json!("control-plane"),
            json!("10d"),
            json!("v1.32.0-tugboat"),
            json!("192.168.1.10"),
            json!("<none>"),
            json!("Debian GNU/Linux 13 (trixie)"),
            json!("6.12.0"),
            json!("containerd://2.0.0"),
        ]
    );
    let cordoned =
        json!({"metadata": {"name": "n2"}, "spec": {"unschedulable": true}, "status": {}});
    let row = cells("", "nodes", &cordoned);
    assert_eq!(row[1], "Unknown,SchedulingDisabled");
    assert_eq!(row[2], "<none>");
    assert_eq!(row[7], "<unknown>");
}

fn hpa(status: Value) -> Value {
    json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "creationTimestamp": ago(90)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1,
            "maxReplicas": 10,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
        },
        "status": status
    })
}

#[test]
fn hpa_with_metrics_row() {
    let with_metrics = hpa(json!({
        "currentReplicas": 3,
        "desiredReplicas": 3,
        "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 40, "averageValue": "120m"}}}]
    }));
    let table = table(
        "autoscaling",
        "horizontalpodautoscalers",
        [&with_metrics],
        now(),
        IncludeObject::None,
    );
    let names: Vec<&str> = table
        .column_definitions
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "Name",
            "Reference",
            "Targets",
            "MinPods",
            "MaxPods",
            "Replicas",
            "Age"
        ]
    );
    assert_eq!(
        table.rows[0].cells,
        vec![
            json!("web"),
            json!("Deployment/web"),
            json!("cpu: 40%/80%"),
            json!("1"),
            json!(10),
            json!(3),
            json!("90s"),
        ]
    );
}

#[test]
fn hpa_without_metrics_row() {
    let fresh = hpa(json!({"currentReplicas": 0, "desiredReplicas": 0}));
    let row = cells("autoscaling", "horizontalpodautoscalers", &fresh);
    assert_eq!(row[2], "cpu: <unknown>/80%");
    assert_eq!(row[5], 0);
    let mut no_min = fresh.clone();
    no_min["spec"]
        .as_object_mut()
        .unwrap()
        .remove("minReplicas");
    assert_eq!(
        cells("autoscaling", "horizontalpodautoscalers", &no_min)[3],
        "<unset>"
    );
    // An autoscaling/v1 object prints the same.
    let v1 = json!({
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5, "targetCPUUtilizationPercentage": 50},
        "status": {"currentReplicas": 2, "currentCPUUtilizationPercentage": 20}
    });
    assert_eq!(
        cells("autoscaling", "horizontalpodautoscalers", &v1)[2],
        "cpu: 20%/50%"
    );
}

#[test]
fn hpa_metric_formats() {
    let specs = vec![
        json!({"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}}),
        json!({"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}}),
        json!({"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "Value", "value": "30"}}}),
    ];
    let statuses = vec![
        json!({"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "50Mi"}}}),
    ];
    assert_eq!(
        format_hpa_metrics(&specs, &statuses),
        "memory: 50Mi/100Mi, <unknown>/10 + 1 more..."
    );
    assert_eq!(format_hpa_metrics(&[], &[]), "<none>");
}

#[test]
fn event_row() {
    let event = json!({
        "metadata": {"name": "web.17f2", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default", "fieldPath": "spec.containers{web}"},
        "reason": "Pulled",
        "message": "Container image \"busybox\" already present on machine\n",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": ago(600),
        "lastTimestamp": ago(30),
        "count": 4,
        "type": "Normal"
    });
    let table = table("", "events", [&event], now(), IncludeObject::None);
    let names: Vec<(&str, i32)> = table
        .column_definitions
        .iter()
        .map(|c| (c.name.as_str(), c.priority))
        .collect();
    assert_eq!(
        names,
        [
            ("Last Seen", 0),
            ("Type", 0),
            ("Reason", 0),
            ("Object", 0),
            ("Subobject", 1),
            ("Source", 1),
            ("Message", 0),
            ("First Seen", 1),
            ("Count", 1),
            ("Name", 1)
        ]
    );
    assert_eq!(
        table.rows[0].cells,
        vec![
            json!("30s"),
            json!("Normal"),
            json!("Pulled"),
            json!("pod/web"),
            json!("spec.containers{web}"),
            json!("kubelet, node-1"),
            json!("Container image \"busybox\" already present on machine"),
            json!("10m"),
            json!(4),
            json!("web.17f2"),
        ]
    );
    // A new-style event: eventTime and series, no counts.
    let series = json!({
        "metadata": {"name": "e"},
        "involvedObject": {"kind": "Node", "name": "n1"},
        "eventTime": "2025-06-01T11:00:00.000000Z",
        "series": {"count": 7, "lastObservedTime": ago(5)},
        "reportingComponent": "tugboat-agent",
        "type": "Warning"
    });
    let row = cells("", "events", &series);
    assert_eq!(row[0], "5s");
    assert_eq!(row[3], "node/n1");
    assert_eq!(row[5], "tugboat-agent");
    assert_eq!(row[7], "60m");
    assert_eq!(row[8], 7);
}

#[test]
fn events_k8s_io_shaped_event_row() {
    let event = json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "web.1"},
        "regarding": {"kind": "Deployment", "name": "web"},
        "note": "Scaled up replica set web-1 to 3",
        "reason": "ScalingReplicaSet",
        "reportingController": "deployment-controller",
        "deprecatedFirstTimestamp": ago(120),
        "deprecatedLastTimestamp": ago(60),
        "deprecatedCount": 2,
        "type": "Normal"
    });
    assert_eq!(
        cells("events.k8s.io", "events", &event),
        vec![
            json!("60s"),
            json!("Normal"),
            json!("ScalingReplicaSet"),
            json!("deployment/web"),
            json!(""),
            json!("deployment-controller"),
            json!("Scaled up replica set web-1 to 3"),
            json!("2m"),
            json!(2),
            json!("web.1"),
        ]
    );
}

#[test]
fn config_and_account_rows() {
    let cm = json!({"metadata": {"name": "cfg"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
    assert_eq!(cells("", "configmaps", &cm)[1], 3);
    let secret = json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"k": "dg=="}});
    assert_eq!(
        cells("", "secrets", &secret)[1..3],
        [json!("Opaque"), json!(1)]
    );
    let sa = json!({"metadata": {"name": "default"}});
    assert_eq!(cells("", "serviceaccounts", &sa)[1], 0);
    let ns = json!({"metadata": {"name": "default", "creationTimestamp": ago(7200)}, "status": {"phase": "Active"}});
    assert_eq!(
        cells("", "namespaces", &ns),
        vec![json!("default"), json!("Active"), json!("120m")]
    );
    let lease =
        json!({"metadata": {"name": "tugboat-scheduler"}, "spec": {"holderIdentity": "host_1234"}});
    assert_eq!(
        cells("coordination.k8s.io", "leases", &lease)[1],
        "host_1234"
    );
}

#[test]
fn endpoints_rows() {
    let endpoints = json!({
        "metadata": {"name": "web"},
        "subsets": [{
            "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"}, {"ip": "fd00::4"}],
            "ports": [{"port": 8080}]
        }]
    });
    assert_eq!(
        cells("", "endpoints", &endpoints)[1],
        "10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080 + 1 more..."
    );
    assert_eq!(
        cells("", "endpoints", &json!({"metadata": {"name": "x"}}))[1],
        "<none>"
    );
    let slice = json!({
        "metadata": {"name": "web-abc"},
        "addressType": "IPv4",
        "ports": [{"port": 8080, "name": "http"}],
        "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}]
    });
    assert_eq!(
        cells("discovery.k8s.io", "endpointslices", &slice)[1..4],
        [json!("IPv4"), json!("8080"), json!("10.0.0.1,10.0.0.2")]
    );
    let empty_slice = json!({"metadata": {"name": "e"}, "addressType": "IPv4"});
    assert_eq!(
        cells("discovery.k8s.io", "endpointslices", &empty_slice)[2],
        "<unset>"
    );
}

#[test]
fn job_and_cron_job_rows() {
    let job = json!({
        "metadata": {"name": "pi", "creationTimestamp": ago(100)},
        "spec": {"completions": 1, "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}}, "template": {"spec": {"containers": [{"name": "pi", "image": "busybox"}]}}},
        "status": {"succeeded": 1, "startTime": ago(100), "completionTime": ago(88), "conditions": [{"type": "Complete", "status": "True"}]}
    });
    assert_eq!(
        cells("batch", "jobs", &job)[..5],
        [
            json!("pi"),
            json!("Complete"),
            json!("1/1"),
            json!("12s"),
            json!("100s")
        ]
    );
    let running = json!({"metadata": {"name": "r"}, "spec": {"parallelism": 3}, "status": {"startTime": ago(30)}});
    assert_eq!(
        cells("batch", "jobs", &running)[1..4],
        [json!("Running"), json!("0/1 of 3"), json!("30s")]
    );
    let cron = json!({
        "metadata": {"name": "nightly"},
        "spec": {"schedule": "0 3 * * *", "suspend": false, "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}},
        "status": {"active": [{"name": "nightly-1"}], "lastScheduleTime": ago(3600)}
    });
    assert_eq!(
        cells("batch", "cronjobs", &cron)[1..6],
        [
            json!("0 3 * * *"),
            json!("<none>"),
            json!("False"),
            json!(1),
            json!("60m")
        ]
    );
}

#[test]
fn storage_and_policy_rows() {
    let pv = json!({
        "metadata": {"name": "pv1"},
        "spec": {
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "claimRef": {"namespace": "default", "name": "data"},
            "storageClassName": "local"
        },
        "status": {"phase": "Bound"}
    });
    assert_eq!(
        cells("", "persistentvolumes", &pv)[1..9],
        [
            json!("10Gi"),
            json!("RWO,RWX"),
            json!("Retain"),
            json!("Bound"),
            json!("default/data"),
            json!("local"),
            json!("<unset>"),
            json!("")
        ]
    );
    let pvc = json!({
        "metadata": {"name": "data", "deletionTimestamp": ago(1)},
        "spec": {"volumeName": "pv1", "storageClassName": "local"},
        "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"]}
    });
    assert_eq!(
        cells("", "persistentvolumeclaims", &pvc)[1..6],
        [
            json!("Terminating"),
            json!("pv1"),
            json!("10Gi"),
            json!("RWO"),
            json!("local")
        ]
    );
    let default_class = json!({
        "metadata": {"name": "local-path", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "tugboat.dev/local-path",
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer"
    });
    assert_eq!(
        cells("storage.k8s.io", "storageclasses", &default_class)[0..5],
        [
            json!("local-path (default)"),
            json!("tugboat.dev/local-path"),
            json!("Delete"),
            json!("WaitForFirstConsumer"),
            json!(false)
        ]
    );
    let bare_class = json!({"metadata": {"name": "fast"}, "provisioner": "x.io/fast", "allowVolumeExpansion": true});
    assert_eq!(
        cells("storage.k8s.io", "storageclasses", &bare_class)[0..5],
        [
            json!("fast"),
            json!("x.io/fast"),
            json!("Delete"),
            json!("Immediate"),
            json!(true)
        ]
    );
    let names: Vec<String> = column_definitions("storage.k8s.io", "storageclasses")
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(
        names,
        [
            "Name",
            "Provisioner",
            "ReclaimPolicy",
            "VolumeBindingMode",
            "AllowVolumeExpansion",
            "Age"
        ]
    );
    let pdb = json!({"metadata": {"name": "web"}, "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}});
    assert_eq!(
        cells("policy", "poddisruptionbudgets", &pdb)[1..4],
        [json!("50%"), json!("N/A"), json!(1)]
    );
    let revision = json!({
        "metadata": {"name": "ds-abc", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "ds", "controller": true}]},
        "revision": 2
    });
    assert_eq!(
        cells("apps", "controllerrevisions", &revision)[1..3],
        [json!("daemonset.apps/ds"), json!(2)]
    );
}

#[test]
fn unknown_resources_get_the_default_table() {
    let object =
        json!({"metadata": {"name": "thing", "creationTimestamp": "2025-01-02T03:04:05Z"}});
    let table = table(
        "example.com",
        "widgets",
        [&object],
        now(),
        IncludeObject::None,
    );
    assert_eq!(table.column_definitions[1].name, "Created At");
    assert_eq!(table.column_definitions[1].column_type, "date");
    assert_eq!(
        table.rows[0].cells,
        vec![json!("thing"), json!("2025-01-02T03:04:05Z")]
    );
}

#[test]
fn include_object_policies() {
    let pod = running_pod();
    let none = row("", "pods", &pod, now(), IncludeObject::None);
    assert!(none.object.is_none());
    let whole = row("", "pods", &pod, now(), IncludeObject::Object);
    assert_eq!(whole.object.as_ref(), Some(&pod));
    let partial = row("", "pods", &pod, now(), IncludeObject::Metadata);
    assert_eq!(
        partial.object,
        Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": pod["metadata"].clone()
        }))
    );
    assert_eq!("Object".parse::<IncludeObject>(), Ok(IncludeObject::Object));
    assert_eq!("".parse::<IncludeObject>(), Ok(IncludeObject::Metadata));
    assert_eq!("None".parse::<IncludeObject>(), Ok(IncludeObject::None));
    assert!("Everything".parse::<IncludeObject>().is_err());
}

#[test]
fn table_json_shape() {
    let table = table(
        "",
        "namespaces",
        [] as [&Value; 0],
        now(),
        IncludeObject::None,
    );
    let json = serde_json::to_value(&table).unwrap();
    assert_eq!(json["kind"], "Table");
    assert_eq!(json["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(json["metadata"], json!({}));
    assert_eq!(
        json["columnDefinitions"][0],
        json!({
            "name": "Name",
            "type": "string",
            "format": "name",
            "description": "Name must be unique within a namespace.",
            "priority": 0
        })
    );
    assert_eq!(json["rows"], json!([]));
}

#[test]
fn every_printer_fills_every_column_even_for_empty_objects() {
    for resource in Registry::with_metrics().all() {
        let columns = column_definitions(resource.group, resource.plural).len();
        for object in [
            json!({}),
            json!(null),
            json!({"metadata": {"name": 5}, "spec": []}),
        ] {
            let row = row(
                resource.group,
                resource.plural,
                &object,
                now(),
                IncludeObject::Metadata,
            );
            assert_eq!(row.cells.len(), columns, "{}", resource.plural);
        }
    }
}

#[test]
fn accept_header_negotiation() {
    assert!(wants_table(
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
    ));
    assert!(wants_table(
        "application/json;as=Table;v=v1beta1;g=meta.k8s.io"
    ));
    assert!(!wants_table("application/json"));
    assert!(!wants_table(
        "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"
    ));
    assert!(!wants_table("application/yaml;as=Table;v=v1;g=meta.k8s.io"));
}

#[test]
fn rbac_rows_match_kubectl() {
    let binding = json!({
        "metadata": {"name": "dev-edit", "namespace": "dev", "creationTimestamp": ago(90)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [
            {"kind": "User", "name": "jane"},
            {"kind": "User", "name": "joe"},
            {"kind": "Group", "name": "devs"},
            {"kind": "ServiceAccount", "name": "ci", "namespace": "dev"},
        ],
    });
    assert_eq!(
        cells("rbac.authorization.k8s.io", "rolebindings", &binding),
        vec![
            json!("dev-edit"),
            json!("ClusterRole/edit"),
            json!("90s"),
            json!("jane, joe"),
            json!("devs"),
            json!("dev/ci"),
        ]
    );
    let admins = json!({
        "metadata": {"name": "cluster-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "Group", "name": "system:masters"}],
    });
    let row = cells("rbac.authorization.k8s.io", "clusterrolebindings", &admins);
    assert_eq!(row[1], "ClusterRole/cluster-admin");
    assert_eq!(row[4], "system:masters");
    // Roles print their creation time, as upstream's role printer.
    let role = json!({"metadata": {"name": "view", "creationTimestamp": "2025-06-01T10:00:00Z"}});
    assert_eq!(
        cells("rbac.authorization.k8s.io", "clusterroles", &role),
        vec![json!("view"), json!("2025-06-01T10:00:00Z")]
    );
}
