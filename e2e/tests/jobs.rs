//! Jobs as a user drives them with the real kubectl: run to completion, retries with back-off
//! up to the backoff limit, Indexed completion, TTL after finishing, and `kubectl logs job/NAME`.
//!
//! On the simulated runtime a pod's containers exit after `tugboat.dev/sim-run-millis` with
//! `tugboat.dev/sim-exit-code`; on real containers (root and containerd; CI has both) busybox
//! runs the command.

use std::time::Duration;

use tugboat_e2e::containers::containers_or_skip;
use tugboat_e2e::wait::wait_for_value;
use tugboat_e2e::{Cluster, Kubectl, kubectl_or_skip};

/// A Job of `pods` simulated pods that each run 300 ms and exit with `exit_code`.
fn sim_job(name: &str, extra_spec: &str, exit_code: i32) -> String {
    format!(
        r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
{extra_spec}
  template:
    metadata:
      annotations:
        tugboat.dev/sim-run-millis: "300"
        tugboat.dev/sim-exit-code: "{exit_code}"
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 0
      containers:
      - name: work
        image: busybox
"#
    )
}

fn namespace(admin: &Kubectl, name: &str) -> Kubectl {
    admin
        .ok(&["create", "namespace", name])
        .expect("create the namespace");
    admin.namespace(name)
}

#[test]
fn jobs_complete_fail_index_and_expire_with_kubectl() {
    if kubectl_or_skip().is_none() {
        return;
    }
    let cluster = Cluster::start().unwrap();
    let admin = cluster.kubectl().unwrap();
    let k = namespace(&admin, "jobs");

    // Three completions, two at a time.
    k.apply(&sim_job("count", "  completions: 3\n  parallelism: 2", 0))
        .unwrap();
    k.ok(&[
        "wait",
        "--for=condition=complete",
        "job/count",
        "--timeout=60s",
    ])
    .unwrap();
    let table = k.ok(&["get", "job", "count"]).unwrap();
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..3], ["count", "Complete", "3/3"], "{table}");
    let pods = k
        .ok(&["get", "pods", "-l", "job-name=count", "--no-headers"])
        .unwrap();
    assert_eq!(pods.lines().count(), 3, "{pods}");
    assert!(
        pods.lines().all(|l| l.contains("Completed")),
        "every pod ran to completion:\n{pods}"
    );

    // Failing pods: retried after a back-off, then the Job fails at its backoff limit.
    k.apply(&sim_job("flaky", "  backoffLimit: 1", 1)).unwrap();
    k.ok(&[
        "wait",
        "--for=condition=failed",
        "job/flaky",
        "--timeout=60s",
    ])
    .unwrap();
    let failed = k
        .get_jsonpath(&["job", "flaky"], "{.status.failed}")
        .trim()
        .to_owned();
    assert_eq!(failed, "2", "one try and one retry");
    let described = k.ok(&["describe", "job", "flaky"]).unwrap();
    assert!(
        described.contains("BackoffLimitExceeded"),
        "describe says why:\n{described}"
    );

    // Indexed: every index once, with its index in the pod.
    k.apply(&sim_job(
        "indexed",
        "  completions: 3\n  parallelism: 3\n  completionMode: Indexed",
        0,
    ))
    .unwrap();
    k.ok(&[
        "wait",
        "--for=condition=complete",
        "job/indexed",
        "--timeout=60s",
    ])
    .unwrap();
    assert_eq!(
        k.get_jsonpath(&["job", "indexed"], "{.status.completedIndexes}")
            .trim(),
        "0-2"
    );
    let indexes = k
        .ok(&[
            "get",
            "pods",
            "-l",
            "job-name=indexed",
            "-o",
            "jsonpath={.items[*].metadata.annotations.batch\\.kubernetes\\.io/job-completion-index}",
        ])
        .unwrap();
    let mut indexes: Vec<&str> = indexes.split_whitespace().collect();
    indexes.sort_unstable();
    assert_eq!(indexes, ["0", "1", "2"]);

    // A finished Job with a TTL is deleted, and its pods with it.
    k.apply(&sim_job("short-lived", "  ttlSecondsAfterFinished: 2", 0))
        .unwrap();
    wait_for_value("the job to expire", Duration::from_secs(60), || {
        let out = k.run(&["get", "job", "short-lived"]).ok()?;
        (!out.status.success()).then_some(())
    });
    wait_for_value("its pods to go", Duration::from_secs(60), || {
        let pods = k
            .ok(&["get", "pods", "-l", "job-name=short-lived", "-o", "name"])
            .ok()?;
        pods.trim().is_empty().then_some(())
    });
}

#[test]
fn a_job_runs_busybox_to_completion_on_real_containers() {
    if kubectl_or_skip().is_none() || !containers_or_skip() {
        return;
    }
    let mut cluster = Cluster::start_containerd().unwrap();
    let admin = cluster.kubectl().unwrap();
    let k = namespace(&admin, "jobs");
    k.apply(
        r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: hello
spec:
  backoffLimit: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: hello
        image: busybox
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "echo hello from the job; echo sum=$((40 + 2))"]
"#,
    )
    .unwrap();
    k.ok(&[
        "wait",
        "--for=condition=complete",
        "job/hello",
        "--timeout=90s",
    ])
    .unwrap();
    let logs = k.ok(&["logs", "job/hello"]).unwrap();
    assert_eq!(logs, "hello from the job\nsum=42\n");
    let table = k.ok(&["get", "job", "hello"]).unwrap();
    assert!(table.contains("1/1"), "{table}");
    tugboat_e2e::containers::stop_and_reset(&mut cluster).unwrap();
}

#[test]
fn cronjobs_start_jobs_on_schedule_and_by_hand_with_kubectl() {
    if kubectl_or_skip().is_none() {
        return;
    }
    let cluster = Cluster::start().unwrap();
    let admin = cluster.kubectl().unwrap();
    let k = namespace(&admin, "cron");
    k.apply(
        r#"
apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick
spec:
  schedule: "* * * * *"
  timeZone: Etc/UTC
  successfulJobsHistoryLimit: 1
  jobTemplate:
    spec:
      template:
        metadata:
          annotations:
            tugboat.dev/sim-run-millis: "200"
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 0
          containers:
          - name: work
            image: busybox
"#,
    )
    .unwrap();

    // By hand, as kubectl builds it from the template.
    k.ok(&["create", "job", "by-hand", "--from=cronjob/tick"])
        .unwrap();
    k.ok(&[
        "wait",
        "--for=condition=complete",
        "job/by-hand",
        "--timeout=60s",
    ])
    .unwrap();

    // On schedule: within a minute (and a little), a Job named for its minute runs to the end.
    let scheduled = wait_for_value("a scheduled job", Duration::from_secs(90), || {
        let names = k.ok(&["get", "jobs", "-o", "name"]).ok()?;
        names
            .lines()
            .map(|n| n.trim_start_matches("job.batch/").to_owned())
            .find(|n| {
                n.strip_prefix("tick-")
                    .is_some_and(|minutes| minutes.parse::<u64>().is_ok())
            })
    });
    k.ok(&[
        "wait",
        "--for=condition=complete",
        &format!("job/{scheduled}"),
        "--timeout=60s",
    ])
    .unwrap();
    let last = k.get_jsonpath(&["cronjob", "tick"], "{.status.lastScheduleTime}");
    assert!(
        last.trim().ends_with(":00Z"),
        "scheduled on the minute: {last}"
    );
    let table = k.ok(&["get", "cronjob", "tick"]).unwrap();
    assert!(table.contains("* * * * *"), "{table}");
    let events = k
        .ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=tick",
        ])
        .unwrap();
    assert!(
        events.contains(&format!("Created job {scheduled}")),
        "{events}"
    );
}
