//! Validation table tests: every case names the exact field path and upstream message.

use serde_json::{Value, json};

use super::{ErrorReason, FieldError, invalid_object_message, validate_create, validate_update};
use crate::defaults::apply_defaults;

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

fn defaulted(group: &str, kind: &str, mut obj: Value) -> Value {
    apply_defaults(group, kind, &mut obj).unwrap();
    obj
}

fn deployment() -> Value {
    defaulted(
        "apps",
        "Deployment",
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}
                }
            }
        }),
    )
}

fn pod() -> Value {
    defaulted(
        "",
        "Pod",
        json!({"metadata": {"name": "p", "namespace": "default"},
               "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    )
}

fn service() -> Value {
    defaulted(
        "",
        "Service",
        json!({"metadata": {"name": "web", "namespace": "default"},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
    )
}

fn messages(errors: &[FieldError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

/// Applies `mutate` to a valid object and checks the exact errors that result.
fn check(group: &str, kind: &str, base: Value, mutate: impl FnOnce(&mut Value), expected: &[&str]) {
    assert_eq!(
        messages(&validate_create(group, kind, &base)),
        Vec::<String>::new(),
        "base object must be valid"
    );
    let mut obj = base;
    mutate(&mut obj);
    assert_eq!(messages(&validate_create(group, kind, &obj)), expected);
}

#[test]
fn valid_objects_have_no_errors() {
    for (group, kind, obj) in [
        ("apps", "Deployment", deployment()),
        ("", "Pod", pod()),
        ("", "Service", service()),
        (
            "",
            "Namespace",
            defaulted("", "Namespace", json!({"metadata": {"name": "team-a"}})),
        ),
        (
            "",
            "ConfigMap",
            json!({"metadata": {"name": "c", "namespace": "d"}, "data": {"a.b": "x", "K_1": "y"}}),
        ),
        (
            "autoscaling",
            "HorizontalPodAutoscaler",
            defaulted(
                "autoscaling",
                "HorizontalPodAutoscaler",
                json!({
            "metadata": {"name": "h", "namespace": "d"},
            "spec": {"maxReplicas": 3, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}}}),
            ),
        ),
        (
            "batch",
            "CronJob",
            defaulted(
                "batch",
                "CronJob",
                json!({"metadata": {"name": "c", "namespace": "d"}, "spec": {
            "schedule": "*/5 * * * *",
            "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}}),
            ),
        ),
        (
            "coordination.k8s.io",
            "Lease",
            json!({"metadata": {"name": "l", "namespace": "d"}, "spec": {"leaseDurationSeconds": 15}}),
        ),
    ] {
        assert_eq!(
            messages(&validate_create(group, kind, &obj)),
            Vec::<String>::new(),
            "{kind}"
        );
    }
}

#[test]
fn object_meta_rules() {
    check(
        "apps",
        "Deployment",
        deployment(),
        |d| d["metadata"]["name"] = json!("Web_1"),
        &[&format!(
            "metadata.name: Invalid value: \"Web_1\": {DNS1123_SUBDOMAIN_MSG}"
        )],
    );
    check(
        "apps",
        "Deployment",
        deployment(),
        |d| d["metadata"]["name"] = json!(""),
        &["metadata.name: Required value: name or generateName is required"],
    );
    check(
        "apps",
        "Deployment",
        deployment(),
        |d| {
            d["metadata"]["name"] = json!("");
            d["metadata"]["generateName"] = json!("web-");
        },
        &[],
    );
    check(
        "apps",
        "Deployment",
        deployment(),
        |d| d["metadata"]["namespace"] = json!(""),
        &["metadata.namespace: Required value"],
    );
    check(
        "",
        "Namespace",
        json!({"metadata": {"name": "a"}}),
        |n| n["metadata"]["namespace"] = json!("x"),
        &["metadata.namespace: Forbidden: not allowed on this type"],
    );
    check(
        "",
        "Namespace",
        json!({"metadata": {"name": "a"}}),
        |n| n["metadata"]["name"] = json!("a.b"),
        &["metadata.name: Invalid value: \"a.b\": must not contain dots"],
    );
    check(
        "",
        "Service",
        service(),
        |s| s["metadata"]["name"] = json!("1web"),
        &[
            "metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
        ],
    );
}

#[test]
fn labels_and_annotations() {
    check(
        "",
        "Pod",
        pod(),
        |p| p["metadata"]["labels"] = json!({"bad key!": "ok", "ok": "bad value!"}),
        &[
            "metadata.labels: Invalid value: \"bad key!\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
            "metadata.labels: Invalid value: \"bad value!\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        ],
    );
    check(
        "",
        "Pod",
        pod(),
        |p| p["metadata"]["labels"] = json!({"a/b/c": "x", "/x": "y"}),
        &[
            "metadata.labels: Invalid value: \"/x\": prefix part must be non-empty",
            "metadata.labels: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
        ],
    );
    check(
        "",
        "Pod",
        pod(),
        |p| p["metadata"]["labels"] = json!({"k": "v".repeat(64)}),
        &[&format!(
            "metadata.labels: Invalid value: \"{}\": must be no more than 63 characters",
            "v".repeat(64)
        )],
    );
    check(
        "",
        "Pod",
        pod(),
        |p| {
            p["metadata"]["annotations"] =
                json!({"Example.COM/Key": "x", "big": "x".repeat(262_142)})
        },
        &["metadata.annotations: Too long: may not be more than 262144 bytes"],
    );
}

#[test]
fn deployment_rules() {
    check(
        "apps",
        "Deployment",
        deployment(),
        |d| d["spec"]["replicas"] = json!(-1),
        &["spec.replicas: Invalid value: -1: must be greater than or equal to 0"],
    );
    check(
        "apps",
        "Deployment",
        deployment(),
        |d| d["spec"]["revisionHistoryLimit"] = json!(-2),
        &["spec.revisionHistoryLimit: Invalid value: -2: must be greater than or equal to 0"],
    );
    check(
        "apps",
        "Deployment",
        deployment(),
        |d| {
            d["spec"]["selector"]
                .as_object_mut()
                .unwrap()
                .remove("matchLabels");
        },
        &[
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment",
        ],
    );
    check(
        "apps",
        "Deployment",
        deployment(),
        |d| {
            d["spec"].as_object_mut().unwrap().remove("selector");
        },
        &["spec.selector: Required value"],
    );
    check(
        "apps",
        "Deployment",
        deployment(),
        |d| d["spec"]["selector"]["matchLabels"] = json!({"app": "other"}),
        &[
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
        ],
    );
    check(
        "apps",
        "Deployment",
        deployment(),
        |d| d["spec"]["strategy"]["rollingUpdate"] = json!({"maxSurge": 0, "maxUnavailable": 0}),
        &[
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: may not be 0 when `maxSurge` is 0",
        ],
    );
    check(
        "apps",
        "Deployment",
        deployment(),
        |d| d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = json!("150%"),
        &[
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"150%\"}: must not be greater than 100%",
        ],
    );
    check(
        "apps",
        "Deployment",
        deployment(),
        |d| d["spec"]["strategy"] = json!({"type": "Recreate", "rollingUpdate": {}}),
        &[
            "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'",
        ],
    );
    check(
        "apps",
        "Deployment",
        deployment(),
        |d| d["spec"]["strategy"] = json!({"type": "BlueGreen"}),
        &[
            "spec.strategy: Unsupported value: apps.DeploymentStrategy{Type:\"BlueGreen\", RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: \"Recreate\", \"RollingUpdate\"",
        ],
    );
    check(
        "apps",
        "Deployment",
        deployment(),
        |d| d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never"),
        &[
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
        ],
    );
    check(
        "apps",
        "Deployment",
        deployment(),
        |d| d["spec"]["minReadySeconds"] = json!(600),
        &["spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds"],
    );
}

#[test]
fn other_workload_rules() {
    let replica_set = defaulted(
        "apps",
        "ReplicaSet",
        json!({"metadata": {"name": "rs", "namespace": "d"}, "spec": deployment()["spec"].clone()}),
    );
    let mut replica_set = replica_set;
    replica_set["spec"]
        .as_object_mut()
        .unwrap()
        .retain(|k, _| ["replicas", "selector", "template"].contains(&k.as_str()));
    check(
        "apps",
        "ReplicaSet",
        replica_set,
        |r| r["spec"]["selector"] = json!({"matchLabels": {}}),
        &[
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment",
        ],
    );
    let template = deployment()["spec"]["template"].clone();
    let daemon_set = defaulted(
        "apps",
        "DaemonSet",
        json!({"metadata": {"name": "ds", "namespace": "d"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template.clone()}}),
    );
    check(
        "apps",
        "DaemonSet",
        daemon_set.clone(),
        |d| {
            d["spec"]["updateStrategy"]["rollingUpdate"] =
                json!({"maxUnavailable": 0, "maxSurge": 0})
        },
        &[
            "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0",
        ],
    );
    check(
        "apps",
        "DaemonSet",
        daemon_set,
        |d| d["spec"]["template"]["spec"]["activeDeadlineSeconds"] = json!(5),
        &[
            "spec.template.spec.activeDeadlineSeconds: Invalid value: 5: activeDeadlineSeconds in DaemonSet is not Supported",
        ],
    );
    let stateful_set = defaulted(
        "apps",
        "StatefulSet",
        json!({"metadata": {"name": "db", "namespace": "d"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template.clone(), "serviceName": "db"}}),
    );
    check(
        "apps",
        "StatefulSet",
        stateful_set,
        |s| s["spec"]["podManagementPolicy"] = json!("Random"),
        &[
            "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'",
        ],
    );
    // A mount may name a claim template (each pod gets it as a volume), not anything else.
    let mut with_claims = defaulted(
        "apps",
        "StatefulSet",
        json!({"metadata": {"name": "db", "namespace": "d"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template.clone(), "serviceName": "db",
                 "volumeClaimTemplates": [{"metadata": {"name": "data"},
                     "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}),
    );
    with_claims["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "data", "mountPath": "/data"}]);
    check(
        "apps",
        "StatefulSet",
        with_claims,
        |s| {
            s["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]["name"] =
                json!("other")
        },
        &["spec.template.spec.containers[0].volumeMounts[0].name: Not found: \"other\""],
    );
    let rc = defaulted(
        "",
        "ReplicationController",
        json!({"metadata": {"name": "rc", "namespace": "d"}, "spec": {"template": template.clone()}}),
    );
    check(
        "",
        "ReplicationController",
        rc,
        |r| r["spec"]["selector"] = json!({"app": "x"}),
        &[
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
        ],
    );
    let mut job_template = template;
    job_template["spec"]["restartPolicy"] = json!("Never");
    let job = defaulted(
        "batch",
        "Job",
        json!({"metadata": {"name": "j", "namespace": "d"}, "spec": {"template": job_template}}),
    );
    check(
        "batch",
        "Job",
        job.clone(),
        |j| j["spec"]["template"]["spec"]["restartPolicy"] = json!("Always"),
        &[
            "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"",
        ],
    );
    check(
        "batch",
        "Job",
        job,
        |j| j["spec"]["backoffLimit"] = json!(-1),
        &["spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0"],
    );
}

#[test]
fn pod_spec_rules() {
    let mut two_containers = pod();
    two_containers["spec"]["containers"] = json!([
        {"name": "a", "image": "busybox", "imagePullPolicy": "Always", "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"},
        {"name": "b", "image": "busybox", "imagePullPolicy": "Always", "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}
    ]);
    check(
        "",
        "Pod",
        pod(),
        |p| p["spec"]["containers"] = json!([]),
        &["spec.containers: Required value"],
    );
    check(
        "",
        "Pod",
        two_containers.clone(),
        |p| p["spec"]["containers"][1]["name"] = json!("a"),
        &["spec.containers[1].name: Duplicate value: \"a\""],
    );
    check(
        "",
        "Pod",
        two_containers,
        |p| {
            p["spec"]["initContainers"] = json!([{"name": "b", "image": "busybox", "imagePullPolicy": "Always", "terminationMessagePolicy": "File"}]);
        },
        &["spec.initContainers[0].name: Duplicate value: \"b\""],
    );
    check(
        "",
        "Pod",
        pod(),
        |p| p["spec"]["containers"][0]["name"] = json!("My_Container"),
        &[&format!(
            "spec.containers[0].name: Invalid value: \"My_Container\": {DNS1123_LABEL_MSG}"
        )],
    );
    check(
        "",
        "Pod",
        pod(),
        |p| p["spec"]["containers"][0]["image"] = json!(""),
        &["spec.containers[0].image: Required value"],
    );
    check(
        "",
        "Pod",
        pod(),
        |p| p["spec"]["containers"][0]["imagePullPolicy"] = json!("Sometimes"),
        &[
            "spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
        ],
    );
    check(
        "",
        "Pod",
        pod(),
        |p| p["spec"]["restartPolicy"] = json!("Maybe"),
        &[
            "spec.restartPolicy: Unsupported value: \"Maybe\": supported values: \"Always\", \"OnFailure\", \"Never\"",
        ],
    );
    check(
        "",
        "Pod",
        pod(),
        |p| {
            p["spec"]["containers"][0]["ports"] = json!([
                {"containerPort": 0, "protocol": "TCP"},
                {"containerPort": 70000, "protocol": "TCP", "name": "http"},
                {"containerPort": 81, "protocol": "ICMP", "name": "http"}
            ])
        },
        &[
            "spec.containers[0].ports[0].containerPort: Required value",
            "spec.containers[0].ports[1].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.containers[0].ports[2].name: Duplicate value: \"http\"",
            "spec.containers[0].ports[2].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
        ],
    );
    check(
        "",
        "Pod",
        pod(),
        |p| {
            p["spec"]["containers"][0]["livenessProbe"] = json!({
                "exec": {"command": ["true"]}, "httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
                "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 2, "failureThreshold": 3
            })
        },
        &[
            "spec.containers[0].livenessProbe.httpGet: Forbidden: may not specify more than 1 handler type",
            "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
        ],
    );
    check(
        "",
        "Pod",
        pod(),
        |p| p["spec"]["containers"][0]["readinessProbe"] = json!({"periodSeconds": 10}),
        &["spec.containers[0].readinessProbe: Required value: must specify a handler type"],
    );
    check(
        "",
        "Pod",
        pod(),
        |p| {
            p["spec"]["containers"][0]["resources"] =
                json!({"limits": {"cpu": "1"}, "requests": {"cpu": "1500m", "memory": "lots"}})
        },
        &[
            "spec.containers[0].resources.requests[memory]: Invalid value: \"lots\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            "spec.containers[0].resources.requests[cpu]: Invalid value: \"1500m\": must be less than or equal to cpu limit of 1",
        ],
    );
    check(
        "",
        "Pod",
        pod(),
        |p| {
            p["spec"]["containers"][0]["env"] =
                json!([{"name": ""}, {"name": "A=B"}, {"name": "X", "valueFrom": {}}])
        },
        &[
            "spec.containers[0].env[0].name: Required value",
            "spec.containers[0].env[1].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
            "spec.containers[0].env[2].valueFrom: Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        ],
    );
    check(
        "",
        "Pod",
        pod(),
        |p| {
            p["spec"]["volumes"] = json!([
                {"name": "data", "emptyDir": {}},
                {"name": "data", "emptyDir": {}, "hostPath": {"path": "/x", "type": ""}}
            ]);
            p["spec"]["containers"][0]["volumeMounts"] =
                json!([{"name": "missing", "mountPath": "/m"}]);
        },
        &[
            "spec.volumes[1].emptyDir: Forbidden: may not specify more than 1 volume type",
            "spec.volumes[1].name: Duplicate value: \"data\"",
            "spec.containers[0].volumeMounts[0].name: Not found: \"missing\"",
        ],
    );
}

#[test]
fn every_common_volume_source_is_a_volume_type() {
    for source in [
        json!({"configMap": {"name": "settings"}}),
        json!({"secret": {"secretName": "token"}}),
        json!({"emptyDir": {}}),
        json!({"hostPath": {"path": "/srv"}}),
        json!({"downwardAPI": {"items": []}}),
        json!({"projected": {"sources": []}}),
        json!({"persistentVolumeClaim": {"claimName": "data"}}),
    ] {
        let mut volume = source.clone();
        volume["name"] = json!("v");
        check(
            "",
            "Pod",
            pod(),
            |p| p["spec"]["volumes"] = json!([volume]),
            &[],
        );
    }
}

#[test]
fn service_rules() {
    check(
        "",
        "Service",
        service(),
        |s| s["spec"]["ports"] = json!([]),
        &["spec.ports: Required value"],
    );
    check(
        "",
        "Service",
        service(),
        |s| {
            s["spec"]["ports"] = json!([]);
            s["spec"]["clusterIP"] = json!("None");
        },
        &[],
    );
    check(
        "",
        "Service",
        service(),
        |s| s["spec"]["type"] = json!("Magic"),
        &[
            "spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
        ],
    );
    check(
        "",
        "Service",
        service(),
        |s| {
            s["spec"]["ports"] = json!([
                {"port": 80, "protocol": "TCP", "targetPort": 80, "name": "web"},
                {"port": 0, "protocol": "TCP", "targetPort": 80, "name": "web"},
                {"port": 81, "protocol": "TCP", "targetPort": 81}
            ])
        },
        &[
            "spec.ports[1].name: Duplicate value: \"web\"",
            "spec.ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            "spec.ports[2].name: Required value",
        ],
    );
    let node_port = defaulted(
        "",
        "Service",
        json!({"metadata": {"name": "np", "namespace": "d"},
        "spec": {"type": "NodePort", "ports": [{"port": 80}]}}),
    );
    check(
        "",
        "Service",
        node_port,
        |s| s["spec"]["ports"][0]["nodePort"] = json!(8080),
        &[
            "spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767",
        ],
    );
    check(
        "",
        "Service",
        service(),
        |s| s["spec"]["ports"][0]["nodePort"] = json!(30080),
        &["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"],
    );
    check(
        "",
        "Service",
        service(),
        |s| s["spec"]["clusterIP"] = json!("10.0.0.300"),
        &[
            "spec.clusterIPs[0]: Invalid value: \"10.0.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ],
    );
    check(
        "",
        "Service",
        service(),
        |s| {
            s["spec"]["clusterIP"] = json!("10.96.0.1");
            s["spec"]["clusterIPs"] = json!(["10.96.0.2"]);
        },
        &[
            "spec.clusterIPs: Invalid value: []string{\"10.96.0.2\"}: first value must match `clusterIP`",
        ],
    );
}

#[test]
fn config_map_secret_hpa_lease_rules() {
    let config_map = json!({"metadata": {"name": "c", "namespace": "d"}, "data": {"ok": "1"}});
    check(
        "",
        "ConfigMap",
        config_map,
        |c| c["data"] = json!({"bad/key": "1", "..x": "2"}),
        &[
            "data[..x]: Invalid value: \"..x\": must not start with '..'",
            "data[bad/key]: Invalid value: \"bad/key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
        ],
    );
    let secret = json!({"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "YQ==", "tls.key": "YQ=="}});
    check(
        "",
        "Secret",
        secret,
        |s| {
            s["data"].as_object_mut().unwrap().remove("tls.key");
        },
        &["data[tls.key]: Required value"],
    );
    let hpa = defaulted(
        "autoscaling",
        "HorizontalPodAutoscaler",
        json!({"metadata": {"name": "h", "namespace": "d"},
        "spec": {"maxReplicas": 3, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}}}),
    );
    check(
        "autoscaling",
        "HorizontalPodAutoscaler",
        hpa.clone(),
        |h| {
            h["spec"]["minReplicas"] = json!(5);
        },
        &["spec.maxReplicas: Invalid value: 3: must be greater than or equal to `minReplicas`"],
    );
    check(
        "autoscaling",
        "HorizontalPodAutoscaler",
        hpa.clone(),
        |h| h["spec"]["minReplicas"] = json!(0),
        &["spec.minReplicas: Invalid value: 0: must be greater than or equal to 1"],
    );
    check(
        "autoscaling",
        "HorizontalPodAutoscaler",
        hpa.clone(),
        |h| h["spec"]["scaleTargetRef"]["name"] = json!(""),
        &["spec.scaleTargetRef.name: Required value"],
    );
    check(
        "autoscaling",
        "HorizontalPodAutoscaler",
        hpa,
        |h| h["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] = json!(0),
        &[
            "spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be greater than 0",
        ],
    );
    let pvc = defaulted(
        "",
        "PersistentVolumeClaim",
        json!({"metadata": {"name": "data", "namespace": "d"},
               "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
    );
    check(
        "",
        "PersistentVolumeClaim",
        pvc,
        |p| {
            p["spec"]["accessModes"] = json!([]);
            p["spec"]["resources"]["requests"]["storage"] = json!("0");
        },
        &[
            "spec.accessModes: Required value: at least 1 access mode is required",
            "spec.resources[storage]: Invalid value: \"0\": must be greater than zero",
        ],
    );
    let lease =
        json!({"metadata": {"name": "l", "namespace": "d"}, "spec": {"leaseDurationSeconds": 15}});
    check(
        "coordination.k8s.io",
        "Lease",
        lease,
        |l| l["spec"]["leaseDurationSeconds"] = json!(0),
        &["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"],
    );
}

#[test]
fn label_selector_expressions() {
    check(
        "apps",
        "Deployment",
        deployment(),
        |d| {
            d["spec"]["selector"]["matchExpressions"] = json!([
                {"key": "app", "operator": "In"},
                {"key": "tier", "operator": "Exists", "values": ["x"]},
                {"key": "tier", "operator": "Near"}
            ])
        },
        &[
            "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
            "spec.selector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            "spec.selector.matchExpressions[2].operator: Invalid value: \"Near\": not a valid selector operator",
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
        ],
    );
}

#[test]
fn wrong_types_become_one_type_error_not_a_panic() {
    let mut d = deployment();
    d["spec"]["replicas"] = json!("three");
    let errors = validate_create("apps", "Deployment", &d);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].reason, ErrorReason::FieldValueTypeInvalid);
    assert!(
        errors[0].message.contains("invalid type: string \"three\""),
        "{}",
        errors[0].message
    );
    assert_eq!(validate_create("apps", "Deployment", &json!([1])).len(), 1);
    // Wrong types in fields the validators read directly must not panic either.
    let odd = json!({"metadata": {"name": 5, "labels": [1]}, "spec": {"containers": {"x": 1}, "ports": "p"}});
    for (group, kind) in [
        ("", "Pod"),
        ("", "Service"),
        ("apps", "Deployment"),
        ("example.com", "Widget"),
    ] {
        let _ = validate_create(group, kind, &odd);
        let _ = validate_update(group, kind, &odd, &json!(null));
    }
}

#[test]
fn update_rules() {
    let old = deployment();
    let mut new = old.clone();
    new["spec"]["selector"]["matchLabels"] = json!({"app": "web", "tier": "fe"});
    new["spec"]["template"]["metadata"]["labels"] = json!({"app": "web", "tier": "fe"});
    new["metadata"]["name"] = json!("other");
    assert_eq!(
        messages(&validate_update("apps", "Deployment", &new, &old)),
        [
            "metadata.name: Invalid value: \"other\": field is immutable",
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"tier\":\"fe\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable",
        ]
    );
    let mut scaled = old.clone();
    scaled["spec"]["replicas"] = json!(5);
    assert_eq!(validate_update("apps", "Deployment", &scaled, &old), []);

    let mut old_service = service();
    old_service["spec"]["clusterIP"] = json!("10.96.0.10");
    let mut kept = old_service.clone();
    kept["spec"]["clusterIP"] = json!("");
    assert_eq!(validate_update("", "Service", &kept, &old_service), []);
    let mut moved = old_service.clone();
    moved["spec"]["clusterIP"] = json!("10.96.0.11");
    assert_eq!(
        messages(&validate_update("", "Service", &moved, &old_service)),
        ["spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.11\"}: may not change once set",]
    );

    let old_pod = pod();
    let mut new_image = old_pod.clone();
    new_image["spec"]["containers"][0]["image"] = json!("busybox:1.36");
    new_image["spec"]["containers"][0]["imagePullPolicy"] = json!("Always");
    new_image["spec"]["activeDeadlineSeconds"] = json!(30);
    new_image["spec"]["tolerations"] = json!([{"key": "k", "operator": "Exists"}]);
    assert_eq!(validate_update("", "Pod", &new_image, &old_pod), []);
    let mut new_port = old_pod.clone();
    new_port["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80, "protocol": "TCP"}]);
    let errors = validate_update("", "Pod", &new_port, &old_pod);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field, "spec");
    assert_eq!(errors[0].reason, ErrorReason::FieldValueForbidden);
    assert!(errors[0].message.starts_with(
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"
    ));

    let old_config =
        json!({"metadata": {"name": "c", "namespace": "d"}, "immutable": true, "data": {"a": "1"}});
    let mut changed = old_config.clone();
    changed["data"]["a"] = json!("2");
    changed["immutable"] = json!(false);
    assert_eq!(
        messages(&validate_update("", "ConfigMap", &changed, &old_config)),
        [
            "immutable: Forbidden: field is immutable when `immutable` is set",
            "data: Forbidden: field is immutable when `immutable` is set",
        ]
    );
    let mut new_uid = old.clone();
    new_uid["metadata"]["uid"] = json!("u2");
    let mut old_uid = old;
    old_uid["metadata"]["uid"] = json!("u1");
    assert_eq!(
        messages(&validate_update("apps", "Deployment", &new_uid, &old_uid)),
        ["metadata.uid: Invalid value: \"u2\": field is immutable",]
    );
}

#[test]
fn status_message_wording() {
    let one = [FieldError::invalid(
        "spec.replicas",
        -1,
        "must be greater than or equal to 0",
    )];
    assert_eq!(
        invalid_object_message("apps", "Deployment", "web", &one),
        "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
    );
    let two = [
        FieldError::required("spec.containers", ""),
        FieldError::required("metadata.namespace", ""),
    ];
    assert_eq!(
        invalid_object_message("", "Pod", "p", &two),
        "Pod \"p\" is invalid: [spec.containers: Required value, metadata.namespace: Required value]"
    );
    assert_eq!(
        ErrorReason::FieldValueNotSupported.as_str(),
        "FieldValueNotSupported"
    );
}

#[test]
fn role_bindings_name_a_role_and_keep_it() {
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "dev-edit", "namespace": "dev"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "jane"}],
    });
    let rbac = "rbac.authorization.k8s.io";
    assert!(validate_create(rbac, "RoleBinding", &binding).is_empty());
    let mut bad = binding.clone();
    bad["roleRef"]["kind"] = json!("Pod");
    bad["subjects"][0]["kind"] = json!("Robot");
    assert_eq!(
        messages(&validate_create(rbac, "RoleBinding", &bad)),
        [
            "roleRef.kind: Unsupported value: \"Pod\": supported values: \"Role\", \"ClusterRole\"",
            "subjects[0].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
        ]
    );
    let mut cluster = binding.clone();
    cluster["kind"] = json!("ClusterRoleBinding");
    cluster["metadata"] = json!({"name": "sa"});
    cluster["subjects"] = json!([{"kind": "ServiceAccount", "name": "ci"}]);
    assert_eq!(
        messages(&validate_create(rbac, "ClusterRoleBinding", &cluster)),
        ["subjects[0].namespace: Required value"]
    );
    let mut changed = binding.clone();
    changed["roleRef"]["name"] = json!("admin");
    assert_eq!(
        messages(&validate_update(rbac, "RoleBinding", &changed, &binding)),
        [
            "roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"ClusterRole\", Name:\"admin\"}: cannot change roleRef"
        ]
    );
}
