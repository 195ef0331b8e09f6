//! VolumeBinding, simplified: a pod's claims must exist; a bound claim's volume must be
//! reachable from the node (its required node affinity); an unbound claim is fine anywhere
//! when its class waits for the first consumer (the scheduler then records the chosen node on
//! the claim and the provisioner makes the volume there), and blocks the pod otherwise until
//! the claim is bound.

use std::sync::Arc;

use k8s_openapi::api::core::v1::PersistentVolume;

use crate::{
    cache::{Cache, NodeInfo, PodInfo},
    framework::{FilterPlugin, NodeFilter, Rejection},
    volumes::{bound_volume, claim_names},
};

/// kube-scheduler's reasons.
pub const NODE_AFFINITY_CONFLICT: &str = "node(s) had volume node affinity conflict";
pub const UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";
pub const MISSING_VOLUME: &str =
    "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)";

#[derive(Debug)]
pub struct VolumeBinding;

enum Check {
    /// Every node fails for the same reason (a claim is missing, being deleted, unbound).
    Everywhere(Rejection),
    /// The bound volumes each node must reach.
    Reach(Vec<Arc<PersistentVolume>>),
}

impl FilterPlugin for VolumeBinding {
    fn name(&self) -> &'static str {
        "VolumeBinding"
    }

    fn prepare<'a>(&self, pod: &'a PodInfo, cache: &'a Cache) -> Option<Box<dyn NodeFilter + 'a>> {
        let names = claim_names(&pod.pod);
        if names.is_empty() {
            return None;
        }
        Some(Box::new(check(pod, cache, &names)))
    }
}

fn check(pod: &PodInfo, cache: &Cache, names: &[&str]) -> Check {
    let volumes = &cache.volumes;
    let mut reach = Vec::new();
    for name in names {
        let Some(claim) = volumes.claim(&pod.namespace, name) else {
            return Check::Everywhere(Rejection::unresolvable(format!(
                "persistentvolumeclaim \"{name}\" not found"
            )));
        };
        if claim.metadata.deletion_timestamp.is_some() {
            return Check::Everywhere(Rejection::unresolvable(format!(
                "persistentvolumeclaim \"{name}\" is being deleted"
            )));
        }
        match bound_volume(claim) {
            Some(volume_name) => match volumes.volumes.get(volume_name) {
                Some(volume) => reach.push(Arc::clone(volume)),
                None => return Check::Everywhere(Rejection::unresolvable(MISSING_VOLUME)),
            },
            None if volumes.is_delayed_binding(claim) => {}
            None => return Check::Everywhere(Rejection::unresolvable(UNBOUND_IMMEDIATE)),
        }
    }
    Check::Reach(reach)
}

impl NodeFilter for Check {
    fn filter(&self, node: &NodeInfo) -> Result<(), Rejection> {
        match self {
            Check::Everywhere(rejection) => Err(rejection.clone()),
            Check::Reach(volumes) => {
                let fits = volumes.iter().all(|volume| {
                    let Some(required) = volume
                        .spec
                        .as_ref()
                        .and_then(|s| s.node_affinity.as_ref())
                        .and_then(|a| a.required.as_ref())
                    else {
                        return true;
                    };
                    required.node_selector_terms.iter().any(|term| {
                        tugboat_api::scheduling::term_matches(term, &node.name, &node.labels)
                    })
                });
                if fits {
                    Ok(())
                } else {
                    Err(Rejection::unresolvable(NODE_AFFINITY_CONFLICT))
                }
            }
        }
    }
}

/// The claims of `pod` the scheduler must mark with the chosen node before binding: unbound,
/// WaitForFirstConsumer, and not already marked for that node.
pub fn claims_to_select_node(pod: &PodInfo, cache: &Cache, node: &str) -> Vec<String> {
    claim_names(&pod.pod)
        .into_iter()
        .filter(|name| {
            cache
                .volumes
                .claim(&pod.namespace, name)
                .is_some_and(|claim| {
                    bound_volume(claim).is_none()
                        && cache.volumes.is_delayed_binding(claim)
                        && claim
                            .metadata
                            .annotations
                            .as_ref()
                            .and_then(|a| a.get(crate::volumes::SELECTED_NODE))
                            .map(String::as_str)
                            != Some(node)
                })
        })
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::json;

    use super::*;

    fn cache_with(nodes: &[&str], objects: serde_json::Value) -> Cache {
        let mut cache = Cache::new();
        for name in nodes {
            let node: Node = serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            }))
            .unwrap();
            cache.set_node(node);
        }
        for claim in objects["claims"].as_array().into_iter().flatten() {
            cache
                .volumes
                .claims
                .insert(serde_json::from_value(claim.clone()).unwrap());
        }
        for volume in objects["volumes"].as_array().into_iter().flatten() {
            cache
                .volumes
                .volumes
                .insert(serde_json::from_value(volume.clone()).unwrap());
        }
        cache.volumes.classes.insert(
            serde_json::from_value(json!({
                "metadata": {"name": "local-path"},
                "provisioner": "tugboat.dev/local-path",
                "volumeBindingMode": "WaitForFirstConsumer",
            }))
            .unwrap(),
        );
        cache
    }

    fn pod_using(claim: &str) -> PodInfo {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "p1"},
            "spec": {
                "containers": [{"name": "c", "image": "busybox"}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
            },
        }))
        .unwrap();
        PodInfo::new(Arc::new(pod))
    }

    fn verdicts(pod: &PodInfo, cache: &Cache) -> Vec<Result<(), Rejection>> {
        let check = VolumeBinding.prepare(pod, cache).unwrap();
        cache.nodes().iter().map(|n| check.filter(n)).collect()
    }

    #[test]
    fn a_claim_bound_to_a_local_volume_pins_the_pod_to_its_node() {
        let cache = cache_with(
            &["n1", "n2"],
            json!({
                "claims": [{"metadata": {"name": "data", "namespace": "default"},
                            "spec": {"volumeName": "pv1", "storageClassName": "local-path"}}],
                "volumes": [{"metadata": {"name": "pv1"}, "spec": {"nodeAffinity": {"required": {
                    "nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n2"]}]}]}}}}],
            }),
        );
        let verdicts = verdicts(&pod_using("data"), &cache);
        assert_eq!(
            verdicts,
            [Err(Rejection::unresolvable(NODE_AFFINITY_CONFLICT)), Ok(())]
        );
    }

    #[test]
    fn a_missing_claim_fails_every_node_with_its_name() {
        let cache = cache_with(&["n1"], json!({}));
        assert_eq!(
            verdicts(&pod_using("nope"), &cache),
            [Err(Rejection::unresolvable(
                "persistentvolumeclaim \"nope\" not found"
            ))]
        );
    }

    #[test]
    fn an_unbound_delayed_claim_fits_anywhere_and_gets_the_chosen_node() {
        let cache = cache_with(
            &["n1", "n2"],
            json!({"claims": [{"metadata": {"name": "data", "namespace": "default"},
                               "spec": {"storageClassName": "local-path"}}]}),
        );
        let pod = pod_using("data");
        assert_eq!(verdicts(&pod, &cache), [Ok(()), Ok(())]);
        assert_eq!(claims_to_select_node(&pod, &cache, "n2"), ["data"]);
    }

    #[test]
    fn an_unbound_immediate_claim_blocks_the_pod() {
        let cache = cache_with(
            &["n1"],
            json!({"claims": [{"metadata": {"name": "data", "namespace": "default"},
                               "spec": {"storageClassName": "manual"}}]}),
        );
        assert_eq!(
            verdicts(&pod_using("data"), &cache),
            [Err(Rejection::unresolvable(UNBOUND_IMMEDIATE))]
        );
    }
}
