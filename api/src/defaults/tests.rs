//! Defaulting tests: expected objects are what kube-apiserver 1.32 returns for the same input.

use serde_json::{Value, json};

use super::pod::image_tag;
use super::{DefaultsError, apply_create_defaults, apply_defaults, generate_job_selector};

fn defaulted(group: &str, kind: &str, mut obj: Value) -> Value {
    apply_defaults(group, kind, &mut obj).unwrap();
    obj
}

fn created(group: &str, kind: &str, mut obj: Value) -> Value {
    apply_create_defaults(group, kind, &mut obj).unwrap();
    obj
}

fn minimal_deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}
            }
        }
    })
}

#[test]
fn minimal_deployment_matches_kube_apiserver() {
    let expected = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "name": "nginx",
                        "image": "nginx:1.27",
                        "imagePullPolicy": "IfNotPresent",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File"
                    }],
                    "dnsPolicy": "ClusterFirst",
                    "restartPolicy": "Always",
                    "schedulerName": "default-scheduler",
                    "securityContext": {},
                    "terminationGracePeriodSeconds": 30
                }
            }
        }
    });
    assert_eq!(
        defaulted("apps", "Deployment", minimal_deployment()),
        expected
    );
}

#[test]
fn defaulting_is_idempotent_for_every_kind() {
    let cases = [
        ("apps", "Deployment", minimal_deployment()),
        (
            "",
            "Pod",
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox",
            "resources": {"limits": {"cpu": "1"}},
            "livenessProbe": {"httpGet": {"port": 8080}}}],
            "volumes": [{"name": "v"}, {"name": "cm", "configMap": {"name": "x"}}]}}),
        ),
        (
            "",
            "Service",
            json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}}),
        ),
        ("", "Namespace", json!({"metadata": {"name": "team-a"}})),
        (
            "batch",
            "CronJob",
            json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}}),
        ),
        (
            "apps",
            "StatefulSet",
            json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}}]}}),
        ),
        (
            "autoscaling",
            "HorizontalPodAutoscaler",
            json!({"spec": {"maxReplicas": 3, "behavior": {}}}),
        ),
        (
            "",
            "ReplicationController",
            json!({"spec": {"template": {"metadata": {"labels": {"a": "b"}}}}}),
        ),
    ];
    for (group, kind, obj) in cases {
        let once = defaulted(group, kind, obj.clone());
        let twice = defaulted(group, kind, once.clone());
        assert_eq!(once, twice, "{group}/{kind}");
        let created_once = created(group, kind, obj);
        let created_twice = created(group, kind, created_once.clone());
        assert_eq!(created_once, created_twice, "create {group}/{kind}");
        // Create-time values survive a later update's defaulting unchanged.
        assert_eq!(
            defaulted(group, kind, created_once.clone()),
            created_once,
            "update {group}/{kind}"
        );
    }
}

#[test]
fn user_values_are_kept() {
    let mut deployment = minimal_deployment();
    deployment["spec"]["replicas"] = json!(0);
    deployment["spec"]["strategy"] = json!({"type": "Recreate"});
    deployment["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
    let out = defaulted("apps", "Deployment", deployment);
    assert_eq!(out["spec"]["replicas"], 0);
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    assert_eq!(out["spec"]["template"]["spec"]["restartPolicy"], "Never");
}

#[test]
fn null_counts_as_unset() {
    let mut deployment = minimal_deployment();
    deployment["spec"]["replicas"] = Value::Null;
    deployment["metadata"]["creationTimestamp"] = Value::Null;
    let out = defaulted("apps", "Deployment", deployment);
    assert_eq!(out["spec"]["replicas"], 1);
}

#[test]
fn unknown_fields_survive() {
    let mut deployment = minimal_deployment();
    deployment["spec"]["futureField"] = json!({"x": 1});
    let out = defaulted("apps", "Deployment", deployment);
    assert_eq!(out["spec"]["futureField"], json!({"x": 1}));
}

#[test]
fn replica_set_template_defaults_like_deployment_template() {
    let deployment = defaulted("apps", "Deployment", minimal_deployment());
    let replica_set = defaulted(
        "apps",
        "ReplicaSet",
        json!({"spec": {"template": minimal_deployment()["spec"]["template"].clone()}}),
    );
    assert_eq!(
        deployment["spec"]["template"],
        replica_set["spec"]["template"]
    );
}

#[test]
fn image_pull_policy_follows_the_tag() {
    let cases = [
        ("busybox", "Always"),
        ("busybox:latest", "Always"),
        ("busybox:1.36", "IfNotPresent"),
        ("localhost:5000/busybox", "Always"),
        ("localhost:5000/busybox:v1", "IfNotPresent"),
        ("busybox@sha256:abcd", "IfNotPresent"),
        ("busybox:latest@sha256:abcd", "Always"),
    ];
    for (image, policy) in cases {
        let pod = defaulted(
            "",
            "Pod",
            json!({"spec": {"containers": [{"name": "c", "image": image}]}}),
        );
        assert_eq!(
            pod["spec"]["containers"][0]["imagePullPolicy"], policy,
            "{image}"
        );
    }
    assert_eq!(image_tag(""), "");
}

#[test]
fn pod_gets_pod_only_and_admission_defaults() {
    let pod = created(
        "",
        "Pod",
        json!({"spec": {"containers": [{"name": "c", "image": "busybox",
            "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "100m"}},
            "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]}]}}),
    );
    let spec = &pod["spec"];
    assert_eq!(
        spec["containers"][0]["resources"]["requests"],
        json!({"cpu": "100m", "memory": "64Mi"})
    );
    assert_eq!(
        spec["containers"][0]["env"][0]["valueFrom"]["fieldRef"]["apiVersion"],
        "v1"
    );
    assert_eq!(spec["enableServiceLinks"], true);
    assert_eq!(spec["serviceAccountName"], "default");
    assert_eq!(spec["serviceAccount"], "default");
    assert_eq!(spec["priority"], 0);
    assert_eq!(spec["preemptionPolicy"], "PreemptLowerPriority");
    assert_eq!(
        spec["tolerations"],
        json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        ])
    );
}

#[test]
fn templates_do_not_get_pod_only_defaults() {
    let mut deployment = minimal_deployment();
    deployment["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"limits": {"cpu": "1"}});
    let out = defaulted("apps", "Deployment", deployment);
    let template_spec = &out["spec"]["template"]["spec"];
    assert_eq!(
        template_spec["containers"][0]["resources"],
        json!({"limits": {"cpu": "1"}})
    );
    assert!(template_spec.get("enableServiceLinks").is_none());
    assert!(template_spec.get("serviceAccountName").is_none());
}

#[test]
fn probes_and_volumes_are_defaulted() {
    let pod = defaulted(
        "",
        "Pod",
        json!({"spec": {
        "containers": [{"name": "c", "image": "x:1",
            "readinessProbe": {"httpGet": {"port": 80}},
            "livenessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 5}}],
        "volumes": [
            {"name": "scratch"},
            {"name": "cfg", "configMap": {"name": "cfg"}},
            {"name": "sec", "secret": {"secretName": "s", "defaultMode": 256}},
            {"name": "host", "hostPath": {"path": "/tmp"}}
        ]}}),
    );
    let container = &pod["spec"]["containers"][0];
    assert_eq!(
        container["readinessProbe"],
        json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
               "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
    );
    assert_eq!(container["livenessProbe"]["periodSeconds"], 5);
    let volumes = &pod["spec"]["volumes"];
    assert_eq!(volumes[0], json!({"name": "scratch", "emptyDir": {}}));
    assert_eq!(volumes[1]["configMap"]["defaultMode"], 420);
    assert_eq!(volumes[2]["secret"]["defaultMode"], 256);
    assert_eq!(volumes[3]["hostPath"]["type"], "");
}

#[test]
fn service_defaults_by_type() {
    let cluster_ip = defaulted(
        "",
        "Service",
        json!({"spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
    );
    assert_eq!(
        cluster_ip["spec"],
        json!({
            "selector": {"app": "web"},
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
            "type": "ClusterIP",
            "sessionAffinity": "None",
            "internalTrafficPolicy": "Cluster",
            "ipFamilyPolicy": "SingleStack",
            "ipFamilies": ["IPv4"]
        })
    );
    let node_port = defaulted(
        "",
        "Service",
        json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "targetPort": "http"}]}}),
    );
    assert_eq!(node_port["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(node_port["spec"]["ports"][0]["targetPort"], "http");
    let load_balancer = defaulted(
        "",
        "Service",
        json!({"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP"}}),
    );
    assert_eq!(load_balancer["spec"]["allocateLoadBalancerNodePorts"], true);
    assert_eq!(
        load_balancer["spec"]["sessionAffinityConfig"],
        json!({"clientIP": {"timeoutSeconds": 10800}})
    );
    let external = defaulted(
        "",
        "Service",
        json!({"spec": {"type": "ExternalName", "externalName": "example.com"}}),
    );
    assert!(external["spec"].get("internalTrafficPolicy").is_none());
    assert!(external["spec"].get("ipFamilies").is_none());
}

#[test]
fn namespace_secret_pvc_node_defaults() {
    let namespace = created("", "Namespace", json!({"metadata": {"name": "team-a"}}));
    assert_eq!(
        namespace["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "team-a"
    );
    assert_eq!(namespace["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(namespace["status"]["phase"], "Active");
    // After the namespace controller drops the finalizer, an update must not bring it back.
    let mut finalized = namespace;
    finalized["spec"]["finalizers"] = json!([]);
    finalized["status"]["phase"] = json!("Terminating");
    let updated = defaulted("", "Namespace", finalized);
    assert_eq!(updated["spec"]["finalizers"], json!([]));
    assert_eq!(updated["status"]["phase"], "Terminating");
    let custom = created(
        "",
        "Namespace",
        json!({"metadata": {"name": "x"}, "spec": {"finalizers": ["example.com/f"]}}),
    );
    assert_eq!(
        custom["spec"]["finalizers"],
        json!(["example.com/f", "kubernetes"])
    );

    let secret = defaulted("", "Secret", json!({"data": {}}));
    assert_eq!(secret["type"], "Opaque");

    let pvc = defaulted("", "PersistentVolumeClaim", json!({"spec": {}}));
    assert_eq!(pvc["spec"]["volumeMode"], "Filesystem");
    assert_eq!(pvc["status"]["phase"], "Pending");

    let pv = defaulted("", "PersistentVolume", json!({"spec": {}}));
    assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    assert_eq!(pv["status"]["phase"], "Pending");
    let class = defaulted(
        "storage.k8s.io",
        "StorageClass",
        json!({"provisioner": "a", "reclaimPolicy": "Retain"}),
    );
    assert_eq!(class["reclaimPolicy"], "Retain");
    assert_eq!(class["volumeBindingMode"], "Immediate");

    let node = defaulted("", "Node", json!({"status": {"capacity": {"cpu": "16"}}}));
    assert_eq!(node["status"]["allocatable"], json!({"cpu": "16"}));
}

#[test]
fn workload_defaults() {
    let daemon_set = defaulted("apps", "DaemonSet", json!({"spec": {}}));
    assert_eq!(
        daemon_set["spec"],
        json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
               "revisionHistoryLimit": 10})
    );
    let stateful_set = defaulted("apps", "StatefulSet", json!({"spec": {}}));
    assert_eq!(stateful_set["spec"]["podManagementPolicy"], "OrderedReady");
    assert_eq!(
        stateful_set["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    );
    assert_eq!(stateful_set["spec"]["replicas"], 1);
    let job = defaulted(
        "batch",
        "Job",
        json!({"spec": {"template": {"metadata": {"labels": {"job": "x"}}}}}),
    );
    assert_eq!(job["spec"]["completions"], 1);
    assert_eq!(job["spec"]["parallelism"], 1);
    assert_eq!(job["spec"]["backoffLimit"], 6);
    assert_eq!(job["spec"]["completionMode"], "NonIndexed");
    assert_eq!(job["spec"]["suspend"], false);
    assert_eq!(job["metadata"]["labels"], json!({"job": "x"}));
    let parallel = defaulted("batch", "Job", json!({"spec": {"parallelism": 3}}));
    assert!(parallel["spec"].get("completions").is_none());
    let cron_job = defaulted(
        "batch",
        "CronJob",
        json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {}}}}}}),
    );
    assert_eq!(cron_job["spec"]["concurrencyPolicy"], "Allow");
    let job_spec = &cron_job["spec"]["jobTemplate"]["spec"];
    assert!(
        job_spec.get("backoffLimit").is_none(),
        "Job defaults stay off CronJob templates"
    );
    assert_eq!(job_spec["template"]["spec"]["dnsPolicy"], "ClusterFirst");
    assert_eq!(cron_job["spec"]["successfulJobsHistoryLimit"], 3);
    assert_eq!(cron_job["spec"]["failedJobsHistoryLimit"], 1);
    let rc = defaulted(
        "",
        "ReplicationController",
        json!({"spec": {"template": {"metadata": {"labels": {"a": "b"}}}}}),
    );
    assert_eq!(rc["spec"]["selector"], json!({"a": "b"}));
    assert_eq!(rc["metadata"]["labels"], json!({"a": "b"}));
    assert_eq!(rc["spec"]["replicas"], 1);
}

#[test]
fn hpa_v2_defaults() {
    let hpa = defaulted(
        "autoscaling",
        "HorizontalPodAutoscaler",
        json!({"apiVersion": "autoscaling/v2", "spec": {"maxReplicas": 5}}),
    );
    assert_eq!(hpa["spec"]["minReplicas"], 1);
    assert_eq!(
        hpa["spec"]["metrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}])
    );
    assert!(hpa["spec"].get("behavior").is_none());

    let with_behavior = defaulted(
        "autoscaling",
        "HorizontalPodAutoscaler",
        json!({"spec": {"maxReplicas": 5, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}}),
    );
    assert_eq!(
        with_behavior["spec"]["behavior"],
        json!({
            "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
                {"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15}]},
            "scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Max", "policies": [
                {"type": "Percent", "value": 100, "periodSeconds": 15}]}
        })
    );

    let v1 = defaulted(
        "autoscaling",
        "HorizontalPodAutoscaler",
        json!({"apiVersion": "autoscaling/v1", "spec": {"maxReplicas": 5}}),
    );
    assert_eq!(v1["spec"], json!({"maxReplicas": 5, "minReplicas": 1}));
}

#[test]
fn wrong_shapes_do_not_panic() {
    let mut not_object = json!([1, 2]);
    assert_eq!(
        apply_defaults("apps", "Deployment", &mut not_object),
        Err(DefaultsError::NotAnObject { found: "array" })
    );
    for body in [
        json!({"spec": "x"}),
        json!({"spec": {"template": {"spec": {"containers": "x", "volumes": [1, null]}}, "strategy": 3}}),
        json!({"spec": {"template": {"spec": {"containers": [null, 1, {"image": 5, "ports": [7]}]}}}}),
    ] {
        for (group, kind) in [
            ("apps", "Deployment"),
            ("", "Pod"),
            ("", "Service"),
            ("batch", "Job"),
        ] {
            let mut obj = body.clone();
            apply_defaults(group, kind, &mut obj).unwrap();
        }
    }
}

#[test]
fn job_selector_is_generated_from_the_uid() {
    let mut job = created(
        "batch",
        "Job",
        json!({"metadata": {"name": "pi"}, "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "pi", "image": "perl"}]}}}}),
    );
    generate_job_selector(&mut job, "uid-1").unwrap();
    assert_eq!(
        job["spec"]["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "uid-1"}})
    );
    assert_eq!(
        job["spec"]["template"]["metadata"]["labels"],
        json!({"batch.kubernetes.io/controller-uid": "uid-1", "batch.kubernetes.io/job-name": "pi",
               "controller-uid": "uid-1", "job-name": "pi"})
    );
    let again = {
        let mut copy = job.clone();
        generate_job_selector(&mut copy, "uid-1").unwrap();
        copy
    };
    assert_eq!(again, job);
    let validation = crate::validation::validate_create("batch", "Job", &{
        let mut j = job.clone();
        j["metadata"]["namespace"] = json!("default");
        j
    });
    assert_eq!(validation, []);

    let mut manual = json!({"metadata": {"name": "m"}, "spec": {"manualSelector": true}});
    generate_job_selector(&mut manual, "uid-2").unwrap();
    assert!(manual["spec"].get("selector").is_none());
}

#[test]
fn default_tolerations_follow_the_server_setting() {
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}],
                 "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                  "effect": "NoExecute", "tolerationSeconds": 5}]}});
    let settings = super::CreateDefaults {
        toleration_seconds: 60,
    };
    super::apply_create_defaults_with("", "Pod", &mut pod, &settings).unwrap();
    assert_eq!(
        pod["spec"]["tolerations"],
        json!([
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5},
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}
        ]),
        "the pod's own toleration stays; the missing one gets the server's default"
    );
}

#[test]
fn status_counters_without_omitempty_read_zero_before_any_controller_runs() {
    let ds = defaulted(
        "apps",
        "DaemonSet",
        json!({"metadata": {"name": "d"}, "spec": {}}),
    );
    assert_eq!(
        ds["status"],
        json!({"currentNumberScheduled": 0, "numberMisscheduled": 0,
               "desiredNumberScheduled": 0, "numberReady": 0})
    );
    // A controller's counts stay as written.
    let rs = defaulted(
        "apps",
        "ReplicaSet",
        json!({"metadata": {"name": "r"}, "status": {"replicas": 3, "readyReplicas": 2}}),
    );
    assert_eq!(rs["status"], json!({"replicas": 3, "readyReplicas": 2}));
    // Kinds whose status counters are all omitempty get no status.
    let deployment = defaulted("apps", "Deployment", minimal_deployment());
    assert!(deployment.get("status").is_none());
}
