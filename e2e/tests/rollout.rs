//! The roll-out and roll-back journey on real containers: requests through the Service never
//! fail while the web Deployment rolls forward and back; `rollout history` shows both revisions
//! with their change-cause; an image that cannot start stops the rollout with the old pods
//! still serving and `rollout status` failing at the progress deadline; with
//! `tugboat.dev/auto-rollback` the controller rolls it back by itself.
//!
//! The broken image names a registry on 127.0.0.1:1, so its pull fails without leaving the
//! machine. Needs root and containerd (CI installs both).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tugboat_e2e::containers::{answers_ok, containers_or_skip, stop_and_reset, wait_for};
use tugboat_e2e::{Cluster, Kubectl, kubectl_or_skip};

fn rollout_status(k: &Kubectl) {
    k.ok(&["rollout", "status", "deployment/web", "--timeout=180s"])
        .expect("the rollout to finish");
}

#[test]
fn roll_forward_and_back_without_failed_requests_on_real_containers() {
    if !containers_or_skip() || kubectl_or_skip().is_none() {
        return;
    }
    let mut cluster = Cluster::start_containerd().unwrap();
    let k = cluster.kubectl().unwrap();
    wait_for("the node to be Ready", Duration::from_secs(60), || {
        k.ok(&["get", "nodes", "--no-headers"])
            .is_ok_and(|out| out.contains(" Ready "))
    });
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/web.yaml");
    k.ok(&["apply", "-f", manifest]).unwrap();
    k.ok(&[
        "annotate",
        "deployment/web",
        "kubernetes.io/change-cause=first version",
    ])
    .unwrap();
    rollout_status(&k);
    let service = format!(
        "{}:80",
        k.get_jsonpath(&["service", "web"], "{.spec.clusterIP}")
    );
    wait_for("the Service to answer", Duration::from_secs(30), || {
        answers_ok(&service, "/health")
    });

    // Requests every 50 ms through the ClusterIP for the whole roll forward and back.
    let stop = AtomicBool::new(false);
    let (sent, failed) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                sent.fetch_add(1, Ordering::Relaxed);
                if !answers_ok(&service, "/health") {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let result = std::panic::catch_unwind(|| {
            k.ok(&["set", "env", "deployment/web", "VERSION=2"])
                .unwrap();
            k.ok(&[
                "annotate",
                "--overwrite",
                "deployment/web",
                "kubernetes.io/change-cause=VERSION=2",
            ])
            .unwrap();
            rollout_status(&k);
            let history = k.ok(&["rollout", "history", "deployment/web"]).unwrap();
            assert!(history.contains("first version"), "{history}");
            assert!(history.contains("VERSION=2"), "{history}");

            k.ok(&["rollout", "undo", "deployment/web"]).unwrap();
            rollout_status(&k);
            let env = k.get_jsonpath(
                &["deployment", "web"],
                "{.spec.template.spec.containers[0].env}",
            );
            assert!(!env.contains("VERSION"), "rolled back: {env}");
        });
        stop.store(true, Ordering::Relaxed);
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    });
    let (sent, failed) = (sent.into_inner(), failed.into_inner());
    assert!(sent > 20, "only {sent} requests were sent");
    assert_eq!(
        failed, 0,
        "{failed} of {sent} requests failed during the rollouts"
    );

    // An image that cannot be pulled: the rollout stops at its deadline, the old pods serve.
    k.ok(&[
        "patch",
        "deployment/web",
        "-p",
        r#"{"spec":{"progressDeadlineSeconds":10}}"#,
    ])
    .unwrap();
    rollout_status(&k);
    k.ok(&[
        "set",
        "image",
        "deployment/web",
        "web=127.0.0.1:1/missing:v1",
    ])
    .unwrap();
    let stuck = k
        .fails(&["rollout", "status", "deployment/web", "--timeout=90s"])
        .unwrap();
    assert!(stuck.contains("exceeded its progress deadline"), "{stuck}");
    let ready = k.get_jsonpath(&["deployment", "web"], "{.status.readyReplicas}");
    assert!(ready == "1" || ready == "2", "ready replicas: {ready}");
    assert!(
        answers_ok(&service, "/health"),
        "the old pods stopped serving"
    );
    let waiting = k.get_jsonpath(
        &["pods", "-l", "app=web"],
        "{.items[*].status.containerStatuses[0].state.waiting.reason}",
    );
    assert!(
        waiting.contains("ErrImagePull") || waiting.contains("ImagePullBackOff"),
        "{waiting}"
    );

    // Opting in to automatic rollback takes it back to the last good template.
    k.ok(&[
        "annotate",
        "deployment/web",
        "tugboat.dev/auto-rollback=true",
    ])
    .unwrap();
    wait_for("the automatic rollback", Duration::from_secs(60), || {
        k.get_jsonpath(
            &["deployment", "web"],
            "{.spec.template.spec.containers[0].image}",
        ) == "busybox"
    });
    rollout_status(&k);
    let events = k
        .ok(&[
            "get",
            "events",
            "--field-selector",
            "reason=DeploymentRollback",
        ])
        .unwrap();
    assert!(events.contains("Rolled back"), "{events}");
    assert!(answers_ok(&service, "/health"));

    stop_and_reset(&mut cluster).unwrap();
}
