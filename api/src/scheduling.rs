//! Which nodes a pod may run on, as pure predicates every component shares: taints and
//! tolerations, `nodeSelector` and required node affinity (the scheduler filters with them,
//! the node lifecycle controller evicts with them, the DaemonSet controller picks its nodes).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, PodSpec, Taint, Toleration,
};

/// True when `toleration` tolerates `taint` (upstream's `Toleration.ToleratesTaint`).
pub fn tolerates_taint(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or_default() {
        "" | "Equal" => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        "Exists" => true,
        _ => false,
    }
}

/// True when one requirement holds for a node's labels (`In`, `NotIn`, `Exists`,
/// `DoesNotExist`, `Gt`, `Lt`); unknown operators never match.
pub fn requirement_matches(
    requirement: &NodeSelectorRequirement,
    labels: &BTreeMap<String, String>,
) -> bool {
    let values = requirement.values.as_deref().unwrap_or_default();
    let label = labels.get(&requirement.key);
    match requirement.operator.as_str() {
        "In" => label.is_some_and(|label| values.contains(label)),
        "NotIn" => label.is_none_or(|label| !values.contains(label)),
        "Exists" => label.is_some(),
        "DoesNotExist" => label.is_none(),
        "Gt" | "Lt" => {
            let (Some(label), [bound]) = (label, values) else {
                return false;
            };
            let (Ok(label), Ok(bound)) = (label.parse::<i64>(), bound.parse::<i64>()) else {
                return false;
            };
            if requirement.operator == "Gt" {
                label > bound
            } else {
                label < bound
            }
        }
        _ => false,
    }
}

/// True when a node selector term holds for the node `name` with `labels`: every expression
/// and every field requirement (only `metadata.name` exists). An empty term matches nothing.
pub fn term_matches(
    term: &NodeSelectorTerm,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    expressions
        .iter()
        .all(|requirement| requirement_matches(requirement, labels))
        && fields.iter().all(|requirement| {
            requirement.key == "metadata.name"
                && requirement_matches(
                    requirement,
                    &BTreeMap::from([("metadata.name".to_owned(), name.to_owned())]),
                )
        })
}

/// Whether a pod with `spec` may go to `node` by its `nodeSelector` and required node
/// affinity (any term), leaving taints aside.
pub fn node_selection_matches(spec: &PodSpec, node: &Node) -> bool {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    selector_ok
        && required.is_none_or(|required| {
            required
                .node_selector_terms
                .iter()
                .any(|term| term_matches(term, name, labels))
        })
}

/// The node's taints with `effect` that none of `tolerations` tolerates.
pub fn untolerated_taints<'a>(
    node: &'a Node,
    tolerations: &[Toleration],
    effects: &[&str],
) -> Vec<&'a Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .filter(|taint| effects.contains(&taint.effect.as_str()))
        .filter(|taint| !tolerations.iter().any(|t| tolerates_taint(t, taint)))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(value: serde_json::Value) -> Node {
        serde_json::from_value(value).expect("node")
    }

    #[test]
    fn selectors_affinity_and_taints() {
        let n = node(json!({
            "metadata": {"name": "n1", "labels": {"disk": "ssd", "zone": "a"}},
            "spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}
        }));
        let spec: PodSpec = serde_json::from_value(json!({
            "containers": [],
            "nodeSelector": {"disk": "ssd"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]
            }}}
        }))
        .expect("spec");
        assert!(node_selection_matches(&spec, &n));
        let other: PodSpec =
            serde_json::from_value(json!({"containers": [], "nodeSelector": {"disk": "hdd"}}))
                .expect("spec");
        assert!(!node_selection_matches(&other, &n));

        assert_eq!(untolerated_taints(&n, &[], &["NoSchedule"]).len(), 1);
        let tolerate: Toleration =
            serde_json::from_value(json!({"key": "dedicated", "operator": "Exists"}))
                .expect("toleration");
        assert!(untolerated_taints(&n, &[tolerate], &["NoSchedule"]).is_empty());
        assert!(untolerated_taints(&n, &[], &["NoExecute"]).is_empty());
    }
}
