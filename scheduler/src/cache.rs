//! The scheduler's picture of the cluster: nodes, the pods bound to them, and the pods it has
//! *assumed* onto a node while the bind is in flight, so the next decision already counts them.
//!
//! Like kube-scheduler's `internal/cache`, but owned by the single scheduling task, so a
//! scheduling cycle reads it directly instead of through a copied snapshot.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
};

use k8s_openapi::api::core::v1::{Node, Pod, PodAffinityTerm, Taint, Toleration};
use tugboat_api::selector::Selector;

use crate::resources::{PodRequests, Resources};

/// `namespace/name`, the key the queue and the cache share.
pub type PodKey = String;

/// The key of a pod object.
pub fn pod_key(pod: &Pod) -> PodKey {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// A host port a container claims on its node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub protocol: String,
    /// `0.0.0.0` when the container sets no host IP: every address.
    pub ip: String,
    pub port: i32,
}

impl HostPort {
    const ANY_IP: &'static str = "0.0.0.0";

    /// Two claims conflict on the same protocol and port when either takes every address.
    pub fn conflicts_with(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == Self::ANY_IP || other.ip == Self::ANY_IP)
    }
}

/// One required or preferred pod (anti-)affinity term, parsed once per pod.
#[derive(Debug, Clone)]
pub struct AffinityTerm {
    /// `None` means every namespace (an empty `namespaceSelector`).
    pub namespaces: Option<BTreeSet<String>>,
    pub selector: Selector,
    pub topology_key: String,
}

impl AffinityTerm {
    fn parse(owner_namespace: &str, term: &PodAffinityTerm) -> Self {
        let namespace_selector_matches_all =
            term.namespace_selector.as_ref().is_some_and(|selector| {
                selector
                    .match_labels
                    .as_ref()
                    .is_none_or(BTreeMap::is_empty)
                    && selector
                        .match_expressions
                        .as_ref()
                        .is_none_or(Vec::is_empty)
            });
        let listed = term.namespaces.clone().unwrap_or_default();
        let namespaces = if namespace_selector_matches_all {
            None
        } else if listed.is_empty() && term.namespace_selector.is_none() {
            Some(BTreeSet::from([owner_namespace.to_owned()]))
        } else {
            // A non-empty namespaceSelector needs namespace labels, which the scheduler does
            // not watch yet: only the listed namespaces count.
            Some(listed.into_iter().collect())
        };
        // A selector that fails to parse matches nothing, as a nil selector does upstream.
        let selector = Selector::from_label_selector(term.label_selector.as_ref())
            .unwrap_or_else(|_| Selector::nothing());
        Self {
            namespaces,
            selector,
            topology_key: term.topology_key.clone(),
        }
    }

    /// True when `pod` is one of the pods this term talks about.
    pub fn matches(&self, pod: &PodInfo) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|namespaces| namespaces.contains(&pod.namespace))
            && self.selector.matches(&pod.labels)
    }
}

/// A pod with everything the plugins need computed once.
#[derive(Debug)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    pub key: PodKey,
    pub namespace: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub requests: PodRequests,
    pub host_ports: Vec<HostPort>,
    pub priority: i32,
    /// The UID of the owner with `controller: true`, for spreading a workload's pods.
    pub controller_uid: Option<String>,
    pub required_affinity: Vec<AffinityTerm>,
    pub required_anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<(i32, AffinityTerm)>,
    pub preferred_anti_affinity: Vec<(i32, AffinityTerm)>,
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> Self {
        let key = pod_key(&pod);
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let empty_spec = k8s_openapi::api::core::v1::PodSpec::default();
        let spec = pod.spec.as_ref().unwrap_or(&empty_spec);
        let host_ports = spec
            .containers
            .iter()
            .flat_map(|container| container.ports.iter().flatten())
            .filter(|port| port.host_port.is_some_and(|host_port| host_port > 0))
            .map(|port| HostPort {
                protocol: port.protocol.clone().unwrap_or_else(|| "TCP".into()),
                ip: port
                    .host_ip
                    .clone()
                    .filter(|ip| !ip.is_empty())
                    .unwrap_or_else(|| HostPort::ANY_IP.into()),
                port: port.host_port.unwrap_or_default(),
            })
            .collect();
        let affinity = spec.affinity.as_ref();
        let pod_affinity = affinity.and_then(|affinity| affinity.pod_affinity.as_ref());
        let pod_anti_affinity = affinity.and_then(|affinity| affinity.pod_anti_affinity.as_ref());
        let required = |terms: Option<&Vec<PodAffinityTerm>>| -> Vec<AffinityTerm> {
            terms
                .into_iter()
                .flatten()
                .map(|term| AffinityTerm::parse(&namespace, term))
                .collect()
        };
        let required_affinity = required(pod_affinity.and_then(|affinity| {
            affinity
                .required_during_scheduling_ignored_during_execution
                .as_ref()
        }));
        let required_anti_affinity = required(pod_anti_affinity.and_then(|affinity| {
            affinity
                .required_during_scheduling_ignored_during_execution
                .as_ref()
        }));
        let preferred_affinity = pod_affinity
            .and_then(|affinity| {
                affinity
                    .preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flatten()
            .map(|weighted| {
                (
                    weighted.weight,
                    AffinityTerm::parse(&namespace, &weighted.pod_affinity_term),
                )
            })
            .collect();
        let preferred_anti_affinity = pod_anti_affinity
            .and_then(|affinity| {
                affinity
                    .preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flatten()
            .map(|weighted| {
                (
                    weighted.weight,
                    AffinityTerm::parse(&namespace, &weighted.pod_affinity_term),
                )
            })
            .collect();
        Self {
            key,
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            requests: PodRequests::of(spec),
            host_ports,
            priority: spec.priority.unwrap_or(0),
            controller_uid: pod
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|owner| owner.controller == Some(true))
                .map(|owner| owner.uid.clone()),
            required_affinity,
            required_anti_affinity,
            preferred_affinity,
            preferred_anti_affinity,
            namespace,
            pod,
        }
    }

    /// The pod's spec, or an empty one for the (invalid) pod that has none.
    pub fn spec(&self) -> Option<&k8s_openapi::api::core::v1::PodSpec> {
        self.pod.spec.as_ref()
    }

    /// The pod's tolerations.
    pub fn tolerations(&self) -> &[Toleration] {
        self.spec()
            .and_then(|spec| spec.tolerations.as_deref())
            .unwrap_or_default()
    }

    /// True when the pod can never preempt others.
    pub fn never_preempts(&self) -> bool {
        self.spec()
            .and_then(|spec| spec.preemption_policy.as_deref())
            == Some("Never")
    }
}

/// A node and what is already placed on it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub name: String,
    /// `None` while pods name a node the node watch has not shown yet (or has deleted).
    pub node: Option<Arc<Node>>,
    pub labels: BTreeMap<String, String>,
    pub allocatable: Resources,
    /// Exact requests of the pods here.
    pub requested: Resources,
    /// Requests with the scoring defaults for containers that set none.
    pub non_zero_milli_cpu: i64,
    pub non_zero_memory: i64,
    pub pods: Vec<Arc<PodInfo>>,
    pub used_ports: Vec<HostPort>,
    /// How many pods here carry required anti-affinity terms (lets the filter skip most nodes).
    pub pods_with_required_anti_affinity: usize,
    /// Bumped on every change, so callers can tell a node changed.
    pub generation: u64,
}

impl NodeInfo {
    /// An empty node entry with no Node object yet.
    pub fn placeholder(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            node: None,
            labels: BTreeMap::new(),
            allocatable: Resources::default(),
            requested: Resources::default(),
            non_zero_milli_cpu: 0,
            non_zero_memory: 0,
            pods: Vec::new(),
            used_ports: Vec::new(),
            pods_with_required_anti_affinity: 0,
            generation: 0,
        }
    }

    /// A node entry for `node` with no pods.
    pub fn new(node: Node) -> Self {
        let name = node.metadata.name.clone().unwrap_or_default();
        let mut info = Self::placeholder(&name);
        info.set_node(node);
        info
    }

    fn set_node(&mut self, node: Node) {
        self.labels = node.metadata.labels.clone().unwrap_or_default();
        self.allocatable = node
            .status
            .as_ref()
            .and_then(|status| status.allocatable.as_ref().or(status.capacity.as_ref()))
            .map(Resources::from_list)
            .unwrap_or_default();
        self.node = Some(Arc::new(node));
        self.generation += 1;
    }

    /// The node's taints.
    pub fn taints(&self) -> &[Taint] {
        self.node
            .as_ref()
            .and_then(|node| node.spec.as_ref())
            .and_then(|spec| spec.taints.as_deref())
            .unwrap_or_default()
    }

    /// True when the node is cordoned (`spec.unschedulable`).
    pub fn is_unschedulable(&self) -> bool {
        self.node
            .as_ref()
            .and_then(|node| node.spec.as_ref())
            .and_then(|spec| spec.unschedulable)
            .unwrap_or(false)
    }

    /// Places `pod` here.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests.requests);
        self.non_zero_milli_cpu += pod.requests.non_zero_milli_cpu;
        self.non_zero_memory += pod.requests.non_zero_memory;
        self.used_ports.extend(pod.host_ports.iter().cloned());
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity += 1;
        }
        self.pods.push(pod);
        self.generation += 1;
    }

    /// Removes the pod with `key`, returning it when it was here.
    pub fn remove_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        let position = self.pods.iter().position(|pod| pod.key == key)?;
        let pod = self.pods.swap_remove(position);
        self.requested.subtract(&pod.requests.requests);
        self.non_zero_milli_cpu -= pod.requests.non_zero_milli_cpu;
        self.non_zero_memory -= pod.requests.non_zero_memory;
        for port in &pod.host_ports {
            if let Some(index) = self.used_ports.iter().position(|used| used == port) {
                self.used_ports.swap_remove(index);
            }
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity -= 1;
        }
        self.generation += 1;
        Some(pod)
    }
}

#[derive(Debug, Clone)]
struct Placement {
    node_name: String,
    assumed: bool,
}

/// Nodes and placed pods, indexed for the scheduling cycle.
#[derive(Debug, Default)]
pub struct Cache {
    nodes: Vec<NodeInfo>,
    index_by_name: HashMap<String, usize>,
    placements: HashMap<PodKey, Placement>,
    /// Nodes with a Node object (entries without one hold only pods).
    node_count: usize,
    /// Claims, volumes and storage classes, for the VolumeBinding filter.
    pub volumes: crate::volumes::VolumeCache,
}

impl Cache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every node entry, including placeholders without a Node object.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// How many nodes the cluster has (placeholders excluded).
    pub fn node_count(&self) -> usize {
        self.node_count
    }

    /// The entry for `name`.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index_by_name
            .get(name)
            .and_then(|index| self.nodes.get(*index))
    }

    fn entry(&mut self, name: &str) -> &mut NodeInfo {
        let index = match self.index_by_name.get(name) {
            Some(index) => *index,
            None => {
                self.nodes.push(NodeInfo::placeholder(name));
                let index = self.nodes.len() - 1;
                self.index_by_name.insert(name.to_owned(), index);
                index
            }
        };
        &mut self.nodes[index]
    }

    /// Adds or replaces a node object.
    pub fn set_node(&mut self, node: Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let entry = self.entry(&name);
        let was_placeholder = entry.node.is_none();
        entry.set_node(node);
        if was_placeholder {
            self.node_count += 1;
        }
    }

    /// Drops a node object; its entry stays while the watch still shows pods on it.
    pub fn remove_node(&mut self, name: &str) {
        let Some(index) = self.index_by_name.get(name).copied() else {
            return;
        };
        if self.nodes[index].node.take().is_some() {
            self.node_count -= 1;
        }
        if self.nodes[index].pods.is_empty() {
            self.remove_entry(index);
        }
    }

    fn remove_entry(&mut self, index: usize) {
        let removed = self.nodes.swap_remove(index);
        self.index_by_name.remove(&removed.name);
        if let Some(moved) = self.nodes.get(index) {
            self.index_by_name.insert(moved.name.clone(), index);
        }
    }

    /// Records a pod the API shows bound to `spec.nodeName`; confirms an assumed one.
    /// Terminal pods no longer hold resources, so they are removed instead.
    pub fn set_bound_pod(&mut self, pod: Arc<PodInfo>) {
        let node_name = pod
            .spec()
            .and_then(|spec| spec.node_name.clone())
            .unwrap_or_default();
        let terminal = pod
            .pod
            .status
            .as_ref()
            .and_then(|status| status.phase.as_deref())
            .is_some_and(|phase| phase == "Succeeded" || phase == "Failed");
        self.remove_pod(&pod.key);
        if node_name.is_empty() || terminal {
            return;
        }
        self.placements.insert(
            pod.key.clone(),
            Placement {
                node_name: node_name.clone(),
                assumed: false,
            },
        );
        self.entry(&node_name).add_pod(pod);
    }

    /// Counts `pod` on `node_name` before the API confirms the bind.
    pub fn assume(&mut self, pod: Arc<PodInfo>, node_name: &str) {
        self.remove_pod(&pod.key);
        self.placements.insert(
            pod.key.clone(),
            Placement {
                node_name: node_name.to_owned(),
                assumed: true,
            },
        );
        self.entry(node_name).add_pod(pod);
    }

    /// Undoes [`Cache::assume`] after a failed bind; a confirmed pod stays.
    pub fn forget(&mut self, key: &str) {
        if self
            .placements
            .get(key)
            .is_some_and(|placement| placement.assumed)
        {
            self.remove_pod(key);
        }
    }

    /// True when `key` is assumed and not yet confirmed by the watch.
    pub fn is_assumed(&self, key: &str) -> bool {
        self.placements
            .get(key)
            .is_some_and(|placement| placement.assumed)
    }

    /// The node a pod is placed on (assumed or confirmed).
    pub fn placement_of(&self, key: &str) -> Option<&str> {
        self.placements
            .get(key)
            .map(|placement| placement.node_name.as_str())
    }

    /// Removes a pod wherever it is placed.
    pub fn remove_pod(&mut self, key: &str) {
        let Some(placement) = self.placements.remove(key) else {
            return;
        };
        let Some(index) = self.index_by_name.get(&placement.node_name).copied() else {
            return;
        };
        self.nodes[index].remove_pod(key);
        if self.nodes[index].node.is_none() && self.nodes[index].pods.is_empty() {
            self.remove_entry(index);
        }
    }

    /// How many pods are placed, assumed ones included.
    pub fn pod_count(&self) -> usize {
        self.placements.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tugboat_testkit::objects::{node, pod};

    #[test]
    fn assumed_pods_count_until_forgotten() {
        let mut cache = Cache::new();
        cache.set_node(node("n1").cpu("2").obj());
        let info = Arc::new(PodInfo::new(Arc::new(pod("p").cpu("500m").obj())));
        cache.assume(info.clone(), "n1");
        assert!(cache.is_assumed("default/p"));
        assert_eq!(cache.node("n1").unwrap().requested.milli_cpu, 500);
        cache.forget("default/p");
        assert_eq!(cache.node("n1").unwrap().requested.milli_cpu, 0);
        assert_eq!(cache.pod_count(), 0);
    }

    #[test]
    fn the_watch_confirms_an_assumed_pod_and_forget_keeps_it() {
        let mut cache = Cache::new();
        cache.set_node(node("n1").obj());
        let assumed = Arc::new(PodInfo::new(Arc::new(pod("p").cpu("1").obj())));
        cache.assume(assumed, "n1");
        let bound = Arc::new(PodInfo::new(Arc::new(
            pod("p").cpu("1").node_name("n1").obj(),
        )));
        cache.set_bound_pod(bound);
        assert!(!cache.is_assumed("default/p"));
        cache.forget("default/p");
        assert_eq!(cache.node("n1").unwrap().requested.milli_cpu, 1000);
    }

    #[test]
    fn pods_may_arrive_before_their_node_and_terminal_pods_free_room() {
        let mut cache = Cache::new();
        let bound = pod("p").cpu("1").node_name("late").obj();
        cache.set_bound_pod(Arc::new(PodInfo::new(Arc::new(bound.clone()))));
        assert_eq!(cache.node_count(), 0);
        cache.set_node(node("late").obj());
        assert_eq!(cache.node_count(), 1);
        assert_eq!(cache.node("late").unwrap().pods.len(), 1);

        let mut finished = bound;
        finished.status = Some(k8s_openapi::api::core::v1::PodStatus {
            phase: Some("Succeeded".into()),
            ..Default::default()
        });
        cache.set_bound_pod(Arc::new(PodInfo::new(Arc::new(finished))));
        assert_eq!(cache.node("late").unwrap().requested.milli_cpu, 0);

        cache.remove_node("late");
        assert_eq!(cache.node_count(), 0);
        assert!(cache.node("late").is_none());
    }

    #[test]
    fn removing_a_node_keeps_the_index_consistent() {
        let mut cache = Cache::new();
        for name in ["a", "b", "c"] {
            cache.set_node(node(name).obj());
        }
        cache.remove_node("a");
        assert_eq!(cache.node("c").unwrap().name, "c");
        assert_eq!(cache.node("b").unwrap().name, "b");
        assert_eq!(cache.nodes().len(), 2);
    }

    #[test]
    fn host_ports_conflict_on_wildcard_or_same_ip() {
        let any = HostPort {
            protocol: "TCP".into(),
            ip: "0.0.0.0".into(),
            port: 80,
        };
        let specific = HostPort {
            ip: "127.0.0.1".into(),
            ..any.clone()
        };
        let other_ip = HostPort {
            ip: "127.0.0.2".into(),
            ..any.clone()
        };
        let udp = HostPort {
            protocol: "UDP".into(),
            ..any.clone()
        };
        assert!(any.conflicts_with(&specific));
        assert!(!specific.conflicts_with(&other_ip));
        assert!(!any.conflicts_with(&udp));
    }
}
