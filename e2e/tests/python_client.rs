//! The official Python client (`kubernetes` on PyPI), unchanged, drives every workload type on
//! `tug up --runtime sim`: it creates a ReplicationController, a DaemonSet, a Job, a CronJob
//! and a StatefulSet, reads them back as its typed models (which refuse missing required
//! fields), waits for each to converge, scales through the scale subresource, and watches.

use std::time::Duration;

use tugboat_e2e::Cluster;
use tugboat_e2e::python::{python_client_or_skip, run_python};

const SCRIPT: &str = r#"
import sys, time
from kubernetes import client, config, watch

config.load_kube_config(config_file=sys.argv[1])
core, apps, batch = client.CoreV1Api(), client.AppsV1Api(), client.BatchV1Api()
ns = "py"
core.create_namespace({"metadata": {"name": ns}})

def template(app, extra=None):
    meta = {"labels": {"app": app}}
    if extra:
        meta["annotations"] = extra
    return {"metadata": meta, "spec": {"terminationGracePeriodSeconds": 0,
            "restartPolicy": "Never" if extra else "Always",
            "containers": [{"name": "c", "image": "busybox:1.36"}]}}

def until(what, check, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise SystemExit("timed out waiting for " + what)

core.create_namespaced_replication_controller(ns, {
    "metadata": {"name": "rc"},
    "spec": {"replicas": 2, "selector": {"app": "rc"}, "template": template("rc")}})
apps.create_namespaced_daemon_set(ns, {
    "metadata": {"name": "ds"},
    "spec": {"selector": {"matchLabels": {"app": "ds"}}, "template": template("ds")}})
core.create_namespaced_service(ns, {
    "metadata": {"name": "db"},
    "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 80}]}})
apps.create_namespaced_stateful_set(ns, {
    "metadata": {"name": "db"},
    "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
             "template": template("db")}})
done = {"tugboat.dev/sim-run-millis": "100", "tugboat.dev/sim-exit-code": "0"}
batch.create_namespaced_job(ns, {
    "metadata": {"name": "job"},
    "spec": {"completions": 2, "parallelism": 2, "template": template("job", done)}})
batch.create_namespaced_cron_job(ns, {
    "metadata": {"name": "cron"},
    "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": template("cron", done)}}}})

rc = until("rc ready", lambda: (lambda r: r if r.status.ready_replicas == 2 else None)(
    core.read_namespaced_replication_controller("rc", ns)))
print("rc", rc.spec.replicas, rc.status.ready_replicas)
nodes = len(core.list_node().items)
ds = until("ds ready", lambda: (lambda d: d if d.status.number_ready == nodes else None)(
    apps.read_namespaced_daemon_set("ds", ns)))
print("ds", ds.status.desired_number_scheduled == nodes, ds.status.number_ready == nodes)
sts = until("sts ready", lambda: (lambda s: s if s.status.ready_replicas == 2 else None)(
    apps.read_namespaced_stateful_set("db", ns)))
print("sts", sorted(p.metadata.name for p in core.list_namespaced_pod(ns, label_selector="app=db").items))
job = until("job complete", lambda: (lambda j: j if (j.status.succeeded or 0) == 2 else None)(
    batch.read_namespaced_job("job", ns)))
print("job", job.status.succeeded, [c.type for c in job.status.conditions if c.status == "True"])
cron = batch.read_namespaced_cron_job("cron", ns)
print("cron", cron.spec.schedule, cron.spec.concurrency_policy, cron.spec.suspend)

# The scale subresource, as the client's own scale helpers use it.
core.patch_namespaced_replication_controller_scale("rc", ns, {"spec": {"replicas": 3}})
rc = until("rc scaled", lambda: (lambda r: r if r.status.ready_replicas == 3 else None)(
    core.read_namespaced_replication_controller("rc", ns)))
print("rc scaled", core.read_namespaced_replication_controller_scale("rc", ns).spec.replicas)
apps.patch_namespaced_stateful_set_scale("db", ns, {"spec": {"replicas": 3}})

# A watch sees the third StatefulSet pod come up.
seen = set()
for event in watch.Watch().stream(core.list_namespaced_pod, ns, label_selector="app=db",
                                   timeout_seconds=30):
    pod = event["object"]
    if pod.status.phase == "Running":
        seen.add(pod.metadata.name)
    if "db-2" in seen:
        break
print("watch", "db-2" in seen)

# Deleting in the foreground, with the client's V1DeleteOptions body: the pods and the
# ControllerRevisions go first, then the StatefulSet.
apps.delete_namespaced_stateful_set("db", ns, body=client.V1DeleteOptions(propagation_policy="Foreground"))
until("sts gone", lambda: not any(s.metadata.name == "db" for s in apps.list_namespaced_stateful_set(ns).items))
print("deleted")
"#;

#[test]
fn the_python_client_drives_every_workload_type() {
    if !python_client_or_skip() {
        return;
    }
    let mut cluster = Cluster::start_with_args(&["--nodes", "2"]).unwrap();
    let stdout = run_python(SCRIPT, &cluster.kubeconfig(), Duration::from_secs(240));
    assert_eq!(
        stdout,
        "rc 2 2\n\
         ds True True\n\
         sts ['db-0', 'db-1']\n\
         job 2 ['SuccessCriteriaMet', 'Complete']\n\
         cron */5 * * * * Allow False\n\
         rc scaled 3\n\
         watch True\n\
         deleted\n"
    );
    cluster.stop().unwrap();
}
