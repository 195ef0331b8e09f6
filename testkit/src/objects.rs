//! Builders for Node and Pod objects in tests and benches, after kube-scheduler's
//! `st.MakeNode()` / `st.MakePod()` wrappers: `pod("web").cpu("500m").label("app", "web").obj()`.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{
        Affinity, Container, ContainerPort, Node, NodeAffinity, NodeSelector,
        NodeSelectorRequirement, NodeSelectorTerm, NodeSpec, NodeStatus, Pod, PodAffinityTerm,
        PodAntiAffinity, PodSpec, PodStatus, PreferredSchedulingTerm, ResourceRequirements, Taint,
        Toleration,
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
    },
};

/// Starts a node named `name` with 16 CPUs, 64 GiB and 110 pods, as simulated nodes have.
pub fn node(name: &str) -> NodeBuilder {
    let mut builder = NodeBuilder(Node {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([(
                "kubernetes.io/hostname".to_owned(),
                name.to_owned(),
            )])),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus::default()),
    });
    builder = builder.cpu("16").memory("64Gi").pods("110");
    builder
}

/// A Node under construction.
#[derive(Debug, Clone)]
pub struct NodeBuilder(Node);

impl NodeBuilder {
    fn allocatable(mut self, resource: &str, amount: &str) -> Self {
        let status = self.0.status.get_or_insert_with(Default::default);
        status
            .allocatable
            .get_or_insert_with(Default::default)
            .insert(resource.to_owned(), Quantity(amount.to_owned()));
        self
    }

    pub fn cpu(self, amount: &str) -> Self {
        self.allocatable("cpu", amount)
    }

    pub fn memory(self, amount: &str) -> Self {
        self.allocatable("memory", amount)
    }

    pub fn pods(self, amount: &str) -> Self {
        self.allocatable("pods", amount)
    }

    pub fn resource(self, name: &str, amount: &str) -> Self {
        self.allocatable(name, amount)
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.0
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(key.to_owned(), value.to_owned());
        self
    }

    pub fn taint(mut self, key: &str, value: &str, effect: &str) -> Self {
        let spec = self.0.spec.get_or_insert_with(Default::default);
        spec.taints
            .get_or_insert_with(Default::default)
            .push(Taint {
                key: key.to_owned(),
                value: (!value.is_empty()).then(|| value.to_owned()),
                effect: effect.to_owned(),
                time_added: None,
            });
        self
    }

    pub fn unschedulable(mut self) -> Self {
        self.0
            .spec
            .get_or_insert_with(Default::default)
            .unschedulable = Some(true);
        self
    }

    pub fn obj(self) -> Node {
        self.0
    }
}

/// Starts a pod `default/name` with one container and no requests.
pub fn pod(name: &str) -> PodBuilder {
    PodBuilder(Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some("default".to_owned()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "main".to_owned(),
                image: Some("busybox".to_owned()),
                resources: Some(ResourceRequirements::default()),
                ..Default::default()
            }],
            scheduler_name: Some("default-scheduler".to_owned()),
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Pending".to_owned()),
            ..Default::default()
        }),
    })
}

/// A Pod under construction.
#[derive(Debug, Clone)]
pub struct PodBuilder(Pod);

impl PodBuilder {
    fn spec(&mut self) -> &mut PodSpec {
        self.0.spec.get_or_insert_with(Default::default)
    }

    fn request(mut self, resource: &str, amount: &str) -> Self {
        let container = &mut self.spec().containers[0];
        container
            .resources
            .get_or_insert_with(Default::default)
            .requests
            .get_or_insert_with(Default::default)
            .insert(resource.to_owned(), Quantity(amount.to_owned()));
        self
    }

    pub fn cpu(self, amount: &str) -> Self {
        self.request("cpu", amount)
    }

    pub fn memory(self, amount: &str) -> Self {
        self.request("memory", amount)
    }

    pub fn resource(self, name: &str, amount: &str) -> Self {
        self.request(name, amount)
    }

    pub fn namespace(mut self, namespace: &str) -> Self {
        self.0.metadata.namespace = Some(namespace.to_owned());
        self
    }

    pub fn uid(mut self, uid: &str) -> Self {
        self.0.metadata.uid = Some(uid.to_owned());
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.0
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(key.to_owned(), value.to_owned());
        self
    }

    pub fn node_name(mut self, node: &str) -> Self {
        self.spec().node_name = Some(node.to_owned());
        self
    }

    pub fn scheduler_name(mut self, name: &str) -> Self {
        self.spec().scheduler_name = Some(name.to_owned());
        self
    }

    pub fn priority(mut self, priority: i32) -> Self {
        self.spec().priority = Some(priority);
        self
    }

    pub fn preemption_policy(mut self, policy: &str) -> Self {
        self.spec().preemption_policy = Some(policy.to_owned());
        self
    }

    pub fn node_selector(mut self, key: &str, value: &str) -> Self {
        self.spec()
            .node_selector
            .get_or_insert_with(Default::default)
            .insert(key.to_owned(), value.to_owned());
        self
    }

    /// Adds a required node affinity term made of one expression.
    pub fn node_affinity_required(mut self, key: &str, operator: &str, values: &[&str]) -> Self {
        let term = NodeSelectorTerm {
            match_expressions: Some(vec![requirement(key, operator, values)]),
            match_fields: None,
        };
        let node_affinity = self.node_affinity();
        node_affinity
            .required_during_scheduling_ignored_during_execution
            .get_or_insert_with(|| NodeSelector {
                node_selector_terms: Vec::new(),
            })
            .node_selector_terms
            .push(term);
        self
    }

    /// Adds a preferred node affinity term made of one expression.
    pub fn node_affinity_preferred(
        mut self,
        weight: i32,
        key: &str,
        operator: &str,
        values: &[&str],
    ) -> Self {
        let preference = NodeSelectorTerm {
            match_expressions: Some(vec![requirement(key, operator, values)]),
            match_fields: None,
        };
        self.node_affinity()
            .preferred_during_scheduling_ignored_during_execution
            .get_or_insert_with(Default::default)
            .push(PreferredSchedulingTerm { preference, weight });
        self
    }

    fn node_affinity(&mut self) -> &mut NodeAffinity {
        self.spec()
            .affinity
            .get_or_insert_with(Affinity::default)
            .node_affinity
            .get_or_insert_with(Default::default)
    }

    /// Adds a required pod anti-affinity term: no pod labelled `key=value` in the same
    /// `topology_key` domain.
    pub fn anti_affinity(mut self, key: &str, value: &str, topology_key: &str) -> Self {
        let term = label_term(key, value, topology_key);
        self.spec()
            .affinity
            .get_or_insert_with(Affinity::default)
            .pod_anti_affinity
            .get_or_insert_with(PodAntiAffinity::default)
            .required_during_scheduling_ignored_during_execution
            .get_or_insert_with(Default::default)
            .push(term);
        self
    }

    /// Adds a required pod affinity term: a pod labelled `key=value` in the same domain.
    pub fn affinity(mut self, key: &str, value: &str, topology_key: &str) -> Self {
        let term = label_term(key, value, topology_key);
        self.spec()
            .affinity
            .get_or_insert_with(Affinity::default)
            .pod_affinity
            .get_or_insert_with(Default::default)
            .required_during_scheduling_ignored_during_execution
            .get_or_insert_with(Default::default)
            .push(term);
        self
    }

    pub fn toleration(mut self, key: &str, operator: &str, value: &str, effect: &str) -> Self {
        let non_empty = |text: &str| (!text.is_empty()).then(|| text.to_owned());
        self.spec()
            .tolerations
            .get_or_insert_with(Default::default)
            .push(Toleration {
                key: non_empty(key),
                operator: non_empty(operator),
                value: non_empty(value),
                effect: non_empty(effect),
                toleration_seconds: None,
            });
        self
    }

    pub fn host_port(mut self, port: i32, protocol: &str, host_ip: &str) -> Self {
        let container = &mut self.spec().containers[0];
        container
            .ports
            .get_or_insert_with(Default::default)
            .push(ContainerPort {
                container_port: port,
                host_port: Some(port),
                protocol: Some(protocol.to_owned()),
                host_ip: (!host_ip.is_empty()).then(|| host_ip.to_owned()),
                name: None,
            });
        self
    }

    /// Marks the pod as controlled by the ReplicaSet with UID `uid`.
    pub fn owned_by(mut self, uid: &str) -> Self {
        self.0.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "apps/v1".to_owned(),
            kind: "ReplicaSet".to_owned(),
            name: format!("rs-{uid}"),
            uid: uid.to_owned(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]);
        self
    }

    pub fn phase(mut self, phase: &str) -> Self {
        self.0.status.get_or_insert_with(Default::default).phase = Some(phase.to_owned());
        self
    }

    pub fn obj(self) -> Pod {
        self.0
    }
}

fn requirement(key: &str, operator: &str, values: &[&str]) -> NodeSelectorRequirement {
    NodeSelectorRequirement {
        key: key.to_owned(),
        operator: operator.to_owned(),
        values: (!values.is_empty()).then(|| values.iter().map(|v| (*v).to_owned()).collect()),
    }
}

fn label_term(key: &str, value: &str, topology_key: &str) -> PodAffinityTerm {
    PodAffinityTerm {
        label_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(key.to_owned(), value.to_owned())])),
            match_expressions: None,
        }),
        topology_key: topology_key.to_owned(),
        ..Default::default()
    }
}
