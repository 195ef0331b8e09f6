//! The built-in patch metadata, checked against the upstream struct tags it transcribes.

use crate::patch::schema::{CONTAINER, OBJECT_META, POD_SPEC};
use crate::patch::{PatchStrategy, Schema, schema_for};

/// A field's tags: strategy, merge key, and whether `retainKeys` is set.
type Tags = (PatchStrategy, Option<&'static str>, bool);

/// Walks `path` from a kind's schema to a field and returns (strategy, merge key, retainKeys).
fn tags(group: &str, kind: &str, path: &[&str]) -> Tags {
    let mut schema: &'static Schema = schema_for(group, kind).expect("kind has metadata");
    let (last, parents) = path.split_last().expect("non-empty path");
    for name in parents {
        schema = schema.field(name).schema;
    }
    let field = schema.field(last);
    (field.strategy, field.merge_key, field.retain_keys)
}

#[test]
fn pod_metadata_matches_upstream_tags() {
    use PatchStrategy::{Default, Merge};
    let cases: &[(&[&str], Tags)] = &[
        (&["spec", "containers"], (Merge, Some("name"), false)),
        (&["spec", "initContainers"], (Merge, Some("name"), false)),
        (
            &["spec", "ephemeralContainers"],
            (Merge, Some("name"), false),
        ),
        (&["spec", "volumes"], (Merge, Some("name"), true)),
        (&["spec", "imagePullSecrets"], (Merge, Some("name"), false)),
        (&["spec", "hostAliases"], (Merge, Some("ip"), false)),
        (
            &["spec", "topologySpreadConstraints"],
            (Merge, Some("topologyKey"), false),
        ),
        (&["spec", "resourceClaims"], (Merge, Some("name"), true)),
        (&["spec", "tolerations"], (Default, None, false)),
        (&["spec", "readinessGates"], (Default, None, false)),
        (
            &["spec", "containers", "ports"],
            (Merge, Some("containerPort"), false),
        ),
        (&["spec", "containers", "env"], (Merge, Some("name"), false)),
        (
            &["spec", "containers", "volumeMounts"],
            (Merge, Some("mountPath"), false),
        ),
        (
            &["spec", "containers", "volumeDevices"],
            (Merge, Some("devicePath"), false),
        ),
        (
            &["spec", "containers", "resizePolicy"],
            (Default, None, false),
        ),
        (&["status", "conditions"], (Merge, Some("type"), false)),
        (&["status", "podIPs"], (Merge, Some("ip"), false)),
        (&["status", "containerStatuses"], (Default, None, false)),
        (
            &["metadata", "ownerReferences"],
            (Merge, Some("uid"), false),
        ),
        (&["metadata", "finalizers"], (Merge, None, false)),
        (&["metadata", "managedFields"], (Default, None, false)),
    ];
    for (path, expected) in cases {
        assert_eq!(tags("", "Pod", path), *expected, "Pod {path:?}");
    }
}

#[test]
fn other_kinds_match_upstream_tags() {
    use PatchStrategy::{Default, Merge, Replace};
    let cases: &[(&str, &str, &[&str], Tags)] = &[
        (
            "apps",
            "Deployment",
            &["spec", "strategy"],
            (Default, None, true),
        ),
        (
            "apps",
            "Deployment",
            &["spec", "template", "spec", "containers"],
            (Merge, Some("name"), false),
        ),
        (
            "apps",
            "Deployment",
            &["status", "conditions"],
            (Merge, Some("type"), false),
        ),
        (
            "apps",
            "ReplicaSet",
            &["spec", "template", "metadata", "finalizers"],
            (Merge, None, false),
        ),
        (
            "apps",
            "StatefulSet",
            &["spec", "volumeClaimTemplates"],
            (Default, None, false),
        ),
        (
            "batch",
            "CronJob",
            &["spec", "jobTemplate", "spec", "template", "spec", "volumes"],
            (Merge, Some("name"), true),
        ),
        (
            "",
            "Service",
            &["spec", "ports"],
            (Merge, Some("port"), false),
        ),
        ("", "Node", &["spec", "taints"], (Default, None, false)),
        ("", "Node", &["spec", "podCIDRs"], (Merge, None, false)),
        (
            "",
            "Node",
            &["status", "addresses"],
            (Merge, Some("type"), false),
        ),
        (
            "",
            "Node",
            &["status", "conditions"],
            (Merge, Some("type"), false),
        ),
        ("", "Endpoints", &["subsets"], (Default, None, false)),
        (
            "",
            "ServiceAccount",
            &["secrets"],
            (Merge, Some("name"), false),
        ),
        (
            "",
            "ServiceAccount",
            &["imagePullSecrets"],
            (Default, None, false),
        ),
        (
            "",
            "Namespace",
            &["status", "conditions"],
            (Merge, Some("type"), false),
        ),
        (
            "",
            "PersistentVolumeClaim",
            &["status", "conditions"],
            (Merge, Some("type"), false),
        ),
        (
            "autoscaling",
            "HorizontalPodAutoscaler",
            &["status", "conditions"],
            (Merge, Some("type"), false),
        ),
        (
            "policy",
            "PodDisruptionBudget",
            &["spec", "selector"],
            (Replace, None, false),
        ),
        (
            "discovery.k8s.io",
            "EndpointSlice",
            &["endpoints"],
            (Default, None, false),
        ),
        (
            "coordination.k8s.io",
            "Lease",
            &["metadata", "ownerReferences"],
            (Merge, Some("uid"), false),
        ),
        (
            "storage.k8s.io",
            "CSINode",
            &["spec", "drivers"],
            (Merge, Some("name"), false),
        ),
        (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration",
            &["webhooks"],
            (Merge, Some("name"), false),
        ),
        (
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration",
            &["webhooks", "matchConditions"],
            (Merge, Some("name"), false),
        ),
        (
            "admissionregistration.k8s.io",
            "ValidatingAdmissionPolicy",
            &["spec", "variables"],
            (Merge, Some("name"), false),
        ),
        (
            "flowcontrol.apiserver.k8s.io",
            "FlowSchema",
            &["status", "conditions"],
            (Merge, Some("type"), false),
        ),
        (
            "rbac.authorization.k8s.io",
            "ClusterRole",
            &["rules"],
            (Default, None, false),
        ),
    ];
    for (group, kind, path, expected) in cases {
        assert_eq!(
            tags(group, kind, path),
            *expected,
            "{group}/{kind} {path:?}"
        );
    }
}

#[test]
fn requested_kinds_have_metadata_and_unknown_kinds_do_not() {
    let served = [
        ("", "Pod"),
        ("", "Service"),
        ("", "Node"),
        ("", "Namespace"),
        ("", "ConfigMap"),
        ("", "Secret"),
        ("", "Endpoints"),
        ("", "ServiceAccount"),
        ("", "PersistentVolume"),
        ("", "PersistentVolumeClaim"),
        ("", "Event"),
        ("apps", "Deployment"),
        ("apps", "ReplicaSet"),
        ("apps", "ControllerRevision"),
        ("autoscaling", "HorizontalPodAutoscaler"),
        ("coordination.k8s.io", "Lease"),
        ("discovery.k8s.io", "EndpointSlice"),
        ("events.k8s.io", "Event"),
    ];
    for (group, kind) in served {
        assert!(schema_for(group, kind).is_some(), "{group}/{kind}");
    }
    assert!(schema_for("example.com", "Widget").is_none());
    assert!(schema_for("apps", "Pod").is_none());
}

#[test]
fn shared_tables_are_the_pod_template_ones() {
    assert!(std::ptr::eq(
        POD_SPEC.field("containers").schema,
        &CONTAINER
    ));
    assert!(std::ptr::eq(
        schema_for("apps", "Deployment")
            .unwrap()
            .field("metadata")
            .schema,
        &OBJECT_META
    ));
}
