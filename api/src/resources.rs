//! The resource registry: every resource the API server serves, as static data.
//!
//! Each [`ResourceInfo`] says where the resource lives in the API (group, versions, plural,
//! scope), what clients may call it (short names, categories, kind, singular), what it
//! supports (verbs, subresources) and where its objects are stored. Discovery documents,
//! routing and kubectl's name resolution (`kubectl get deploy`) are all derived from it.
//!
//! The list mirrors kube-apiserver 1.32 for the resources Tugboat implements: short names,
//! the `all` category and subresources are the upstream ones.

#![warn(missing_docs)]

use std::fmt;
use std::str::FromStr;

/// An API verb as it appears in discovery documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verb {
    /// `POST` to a collection.
    Create,
    /// `DELETE` of one object.
    Delete,
    /// `DELETE` of a collection.
    DeleteCollection,
    /// `GET` of one object.
    Get,
    /// `GET` of a collection.
    List,
    /// `PATCH` of one object.
    Patch,
    /// `PUT` of one object.
    Update,
    /// `GET` of a collection or object with `watch=true`.
    Watch,
}

impl Verb {
    /// The lower-case name used in discovery (`deletecollection`, `watch`...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Verb::Create => "create",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Patch => "patch",
            Verb::Update => "update",
            Verb::Watch => "watch",
        }
    }
}

/// A verb name that is not one of the eight API verbs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown verb {0:?}")]
pub struct UnknownVerb(pub String);

impl FromStr for Verb {
    type Err = UnknownVerb;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL_VERBS
            .iter()
            .copied()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownVerb(s.to_owned()))
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every verb a plain namespaced or cluster-scoped collection supports.
const ALL_VERBS: &[Verb] = &[
    Verb::Create,
    Verb::Delete,
    Verb::DeleteCollection,
    Verb::Get,
    Verb::List,
    Verb::Patch,
    Verb::Update,
    Verb::Watch,
];
/// Namespaces cannot be deleted as a collection upstream.
const NAMESPACE_VERBS: &[Verb] = &[
    Verb::Create,
    Verb::Delete,
    Verb::Get,
    Verb::List,
    Verb::Patch,
    Verb::Update,
    Verb::Watch,
];
/// Read-only resources (metrics).
const READ_VERBS: &[Verb] = &[Verb::Get, Verb::List];
const STATUS_VERBS: &[Verb] = &[Verb::Get, Verb::Patch, Verb::Update];
const CREATE_ONLY: &[Verb] = &[Verb::Create];
const CONNECT_VERBS: &[Verb] = &[Verb::Create, Verb::Get];
const GET_ONLY: &[Verb] = &[Verb::Get];
const UPDATE_ONLY: &[Verb] = &[Verb::Update];

/// The group, version and kind of the object a subresource accepts and returns.
///
/// An empty `version` means "the version the parent resource was addressed with" (status
/// subresources return the parent kind in the parent's version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubresourceKind {
    /// API group; empty for the core group.
    pub group: &'static str,
    /// API version; empty for "same as the parent".
    pub version: &'static str,
    /// Kind of the object.
    pub kind: &'static str,
}

/// A subresource such as `pods/status` or `deployments/scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subresource {
    /// The part after the slash: `status`, `scale`, `log`...
    pub name: &'static str,
    /// The object the subresource speaks; `None` means the parent's own kind.
    pub kind: Option<SubresourceKind>,
    /// Verbs the subresource supports.
    pub verbs: &'static [Verb],
}

/// The group, version and kind a subresource speaks for one parent version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseKind {
    /// API group; empty for core.
    pub group: &'static str,
    /// API version.
    pub version: String,
    /// Kind.
    pub kind: &'static str,
}

impl Subresource {
    /// The group, version and kind this subresource returns when the parent is addressed at
    /// `parent_version`.
    pub fn response_kind(&self, parent: &ResourceInfo, parent_version: &str) -> ResponseKind {
        match self.kind {
            None => ResponseKind {
                group: parent.group,
                version: parent_version.to_owned(),
                kind: parent.kind,
            },
            Some(k) => ResponseKind {
                group: k.group,
                version: if k.version.is_empty() {
                    parent_version.to_owned()
                } else {
                    k.version.to_owned()
                },
                kind: k.kind,
            },
        }
    }
}

const fn status() -> Subresource {
    Subresource {
        name: "status",
        kind: None,
        verbs: STATUS_VERBS,
    }
}

const fn scale() -> Subresource {
    Subresource {
        name: "scale",
        kind: Some(SubresourceKind {
            group: "autoscaling",
            version: "v1",
            kind: "Scale",
        }),
        verbs: STATUS_VERBS,
    }
}

const fn core_kind(kind: &'static str) -> Option<SubresourceKind> {
    Some(SubresourceKind {
        group: "",
        version: "v1",
        kind,
    })
}

/// One resource served by the API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group; empty for the core (legacy) group served under `/api`.
    pub group: &'static str,
    /// Served versions, preferred first.
    pub versions: &'static [&'static str],
    /// Kind of a single object (`Deployment`).
    pub kind: &'static str,
    /// Lower-case plural used in URLs (`deployments`).
    pub plural: &'static str,
    /// Lower-case singular (`deployment`).
    pub singular: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Abbreviations kubectl accepts (`deploy`).
    pub short_names: &'static [&'static str],
    /// Categories such as `all`.
    pub categories: &'static [&'static str],
    /// Verbs on the resource itself.
    pub verbs: &'static [Verb],
    /// Subresources (`status`, `scale`...).
    pub subresources: &'static [Subresource],
    /// The group whose storage holds the objects. Differs from `group` only where two
    /// groups share one stored form (`events.k8s.io` events are core events).
    pub storage_group: &'static str,
    /// Whether the API server keeps objects in the store. False for resources another
    /// component serves (metrics).
    pub stored: bool,
}

impl ResourceInfo {
    /// The preferred (first) version.
    pub fn preferred_version(&self) -> &'static str {
        self.versions.first().copied().unwrap_or("v1")
    }

    /// Whether `version` is served.
    pub fn serves_version(&self, version: &str) -> bool {
        self.versions.contains(&version)
    }

    /// `apiVersion` for `version`: `v1` for core, `apps/v1` otherwise.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_owned()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    /// The group-qualified resource as kube-apiserver prints it in messages:
    /// `pods`, `deployments.apps`.
    pub fn group_resource(&self) -> String {
        qualify(self.plural, self.group)
    }

    /// The group-qualified kind as kube-apiserver prints it in validation messages:
    /// `Pod`, `Deployment.apps`.
    pub fn group_kind(&self) -> String {
        qualify(self.kind, self.group)
    }

    /// Whether the resource supports `verb`.
    pub fn supports(&self, verb: Verb) -> bool {
        self.verbs.contains(&verb)
    }

    /// The subresource called `name`, if any.
    pub fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// The store prefix every object of this resource lives under:
    /// `/registry/pods/` for core, `/registry/apps/deployments/` otherwise.
    pub fn storage_prefix(&self) -> String {
        if self.storage_group.is_empty() {
            format!("/registry/{}/", self.plural)
        } else {
            format!("/registry/{}/{}/", self.storage_group, self.plural)
        }
    }

    /// The store prefix for the objects of one namespace (`/registry/pods/default/`), or
    /// the whole resource for cluster-scoped resources and `None` (all namespaces).
    pub fn storage_prefix_in(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{}/", self.storage_prefix(), ns),
            _ => self.storage_prefix(),
        }
    }

    /// The store key of one object: `<prefix><namespace>/<name>` or `<prefix><name>`.
    /// The namespace is ignored for cluster-scoped resources.
    pub fn storage_key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{}/{}", self.storage_prefix(), ns, name),
            _ => format!("{}{}", self.storage_prefix(), name),
        }
    }
}

/// Splits an `apiVersion` into group and version: `apps/v1` → (`apps`, `v1`), `v1` → (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

fn qualify(name: &str, group: &str) -> String {
    if group.is_empty() {
        name.to_owned()
    } else {
        format!("{name}.{group}")
    }
}

/// A group with its served versions, preferred first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupVersions {
    /// API group; empty for core.
    pub group: &'static str,
    /// Versions, preferred first.
    pub versions: Vec<&'static str>,
}

/// The first of its arguments: an optional override, then the default.
macro_rules! first_of {
    ($first:expr $(, $rest:expr)*) => {
        $first
    };
}

macro_rules! resource {
    (
        group: $group:expr, versions: $versions:expr, kind: $kind:expr, plural: $plural:expr,
        singular: $singular:expr, namespaced: $ns:expr, short: $short:expr, categories: $cat:expr,
        verbs: $verbs:expr, subresources: $subs:expr $(, storage_group: $sg:expr)? $(, stored: $stored:expr)?
    ) => {
        ResourceInfo {
            group: $group,
            versions: $versions,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            namespaced: $ns,
            short_names: $short,
            categories: $cat,
            verbs: $verbs,
            subresources: $subs,
            storage_group: first_of!($($sg,)? $group),
            stored: first_of!($($stored,)? true),
        }
    };
}

const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];
const V1: &[&str] = &["v1"];

/// The built-in resources, in discovery order: core first, then groups by upstream priority.
static BUILTIN: &[ResourceInfo] = &[
    // core/v1
    resource!(group: "", versions: V1, kind: "ConfigMap", plural: "configmaps",
        singular: "configmap", namespaced: true, short: &["cm"], categories: NONE,
        verbs: ALL_VERBS, subresources: &[]),
    resource!(group: "", versions: V1, kind: "Endpoints", plural: "endpoints",
        singular: "endpoints", namespaced: true, short: &["ep"], categories: NONE,
        verbs: ALL_VERBS, subresources: &[]),
    resource!(group: "", versions: V1, kind: "Event", plural: "events",
        singular: "event", namespaced: true, short: &["ev"], categories: NONE,
        verbs: ALL_VERBS, subresources: &[]),
    resource!(group: "", versions: V1, kind: "Namespace", plural: "namespaces",
    singular: "namespace", namespaced: false, short: &["ns"], categories: NONE,
    verbs: NAMESPACE_VERBS, subresources: &[
        Subresource { name: "finalize", kind: None, verbs: UPDATE_ONLY },
        status(),
    ]),
    resource!(group: "", versions: V1, kind: "Node", plural: "nodes",
        singular: "node", namespaced: false, short: &["no"], categories: NONE,
        verbs: ALL_VERBS, subresources: &[status()]),
    resource!(group: "", versions: V1, kind: "PersistentVolumeClaim",
        plural: "persistentvolumeclaims", singular: "persistentvolumeclaim", namespaced: true,
        short: &["pvc"], categories: NONE, verbs: ALL_VERBS, subresources: &[status()]),
    resource!(group: "", versions: V1, kind: "PersistentVolume", plural: "persistentvolumes",
        singular: "persistentvolume", namespaced: false, short: &["pv"], categories: NONE,
        verbs: ALL_VERBS, subresources: &[status()]),
    resource!(group: "", versions: V1, kind: "Pod", plural: "pods",
    singular: "pod", namespaced: true, short: &["po"], categories: ALL,
    verbs: ALL_VERBS, subresources: &[
        Subresource { name: "attach", kind: core_kind("PodAttachOptions"), verbs: CONNECT_VERBS },
        Subresource { name: "binding", kind: core_kind("Binding"), verbs: CREATE_ONLY },
        Subresource { name: "ephemeralcontainers", kind: None, verbs: STATUS_VERBS },
        Subresource {
            name: "eviction",
            kind: Some(SubresourceKind { group: "policy", version: "v1", kind: "Eviction" }),
            verbs: CREATE_ONLY,
        },
        Subresource { name: "exec", kind: core_kind("PodExecOptions"), verbs: CONNECT_VERBS },
        Subresource { name: "log", kind: None, verbs: GET_ONLY },
        Subresource {
            name: "portforward",
            kind: core_kind("PodPortForwardOptions"),
            verbs: CONNECT_VERBS,
        },
        status(),
    ]),
    resource!(group: "", versions: V1, kind: "ReplicationController",
        plural: "replicationcontrollers", singular: "replicationcontroller", namespaced: true,
        short: &["rc"], categories: ALL, verbs: ALL_VERBS, subresources: &[scale(), status()]),
    resource!(group: "", versions: V1, kind: "Secret", plural: "secrets",
        singular: "secret", namespaced: true, short: &[], categories: NONE,
        verbs: ALL_VERBS, subresources: &[]),
    resource!(group: "", versions: V1, kind: "ServiceAccount", plural: "serviceaccounts",
    singular: "serviceaccount", namespaced: true, short: &["sa"], categories: NONE,
    verbs: ALL_VERBS, subresources: &[
        Subresource {
            name: "token",
            kind: Some(SubresourceKind {
                group: "authentication.k8s.io", version: "v1", kind: "TokenRequest",
            }),
            verbs: CREATE_ONLY,
        },
    ]),
    resource!(group: "", versions: V1, kind: "Service", plural: "services",
        singular: "service", namespaced: true, short: &["svc"], categories: ALL,
        verbs: ALL_VERBS, subresources: &[status()]),
    // apps/v1
    resource!(group: "apps", versions: V1, kind: "ControllerRevision",
        plural: "controllerrevisions", singular: "controllerrevision", namespaced: true,
        short: &[], categories: NONE, verbs: ALL_VERBS, subresources: &[]),
    resource!(group: "apps", versions: V1, kind: "DaemonSet", plural: "daemonsets",
        singular: "daemonset", namespaced: true, short: &["ds"], categories: ALL,
        verbs: ALL_VERBS, subresources: &[status()]),
    resource!(group: "apps", versions: V1, kind: "Deployment", plural: "deployments",
        singular: "deployment", namespaced: true, short: &["deploy"], categories: ALL,
        verbs: ALL_VERBS, subresources: &[scale(), status()]),
    resource!(group: "apps", versions: V1, kind: "ReplicaSet", plural: "replicasets",
        singular: "replicaset", namespaced: true, short: &["rs"], categories: ALL,
        verbs: ALL_VERBS, subresources: &[scale(), status()]),
    resource!(group: "apps", versions: V1, kind: "StatefulSet", plural: "statefulsets",
        singular: "statefulset", namespaced: true, short: &["sts"], categories: ALL,
        verbs: ALL_VERBS, subresources: &[scale(), status()]),
    // events.k8s.io/v1: another view of the core events, stored once.
    resource!(group: "events.k8s.io", versions: V1, kind: "Event", plural: "events",
        singular: "event", namespaced: true, short: &["ev"], categories: NONE,
        verbs: ALL_VERBS, subresources: &[], storage_group: ""),
    // authentication.k8s.io/v1 and authorization.k8s.io/v1: reviews, answered and not stored.
    resource!(group: "authentication.k8s.io", versions: V1, kind: "SelfSubjectReview",
        plural: "selfsubjectreviews", singular: "selfsubjectreview", namespaced: false,
        short: &[], categories: NONE, verbs: CREATE_ONLY, subresources: &[], stored: false),
    resource!(group: "authentication.k8s.io", versions: V1, kind: "TokenReview",
        plural: "tokenreviews", singular: "tokenreview", namespaced: false,
        short: &[], categories: NONE, verbs: CREATE_ONLY, subresources: &[], stored: false),
    resource!(group: "authorization.k8s.io", versions: V1, kind: "LocalSubjectAccessReview",
        plural: "localsubjectaccessreviews", singular: "localsubjectaccessreview",
        namespaced: true, short: &[], categories: NONE, verbs: CREATE_ONLY, subresources: &[],
        stored: false),
    resource!(group: "authorization.k8s.io", versions: V1, kind: "SelfSubjectAccessReview",
        plural: "selfsubjectaccessreviews", singular: "selfsubjectaccessreview",
        namespaced: false, short: &[], categories: NONE, verbs: CREATE_ONLY, subresources: &[],
        stored: false),
    resource!(group: "authorization.k8s.io", versions: V1, kind: "SelfSubjectRulesReview",
        plural: "selfsubjectrulesreviews", singular: "selfsubjectrulesreview",
        namespaced: false, short: &[], categories: NONE, verbs: CREATE_ONLY, subresources: &[],
        stored: false),
    resource!(group: "authorization.k8s.io", versions: V1, kind: "SubjectAccessReview",
        plural: "subjectaccessreviews", singular: "subjectaccessreview", namespaced: false,
        short: &[], categories: NONE, verbs: CREATE_ONLY, subresources: &[], stored: false),
    // autoscaling: v2 preferred, v1 served from the same stored form.
    resource!(group: "autoscaling", versions: &["v2", "v1"], kind: "HorizontalPodAutoscaler",
        plural: "horizontalpodautoscalers", singular: "horizontalpodautoscaler",
        namespaced: true, short: &["hpa"], categories: ALL, verbs: ALL_VERBS,
        subresources: &[status()]),
    // batch/v1
    resource!(group: "batch", versions: V1, kind: "CronJob", plural: "cronjobs",
        singular: "cronjob", namespaced: true, short: &["cj"], categories: ALL,
        verbs: ALL_VERBS, subresources: &[status()]),
    resource!(group: "batch", versions: V1, kind: "Job", plural: "jobs",
        singular: "job", namespaced: true, short: &[], categories: ALL,
        verbs: ALL_VERBS, subresources: &[status()]),
    // policy/v1
    resource!(group: "policy", versions: V1, kind: "PodDisruptionBudget",
        plural: "poddisruptionbudgets", singular: "poddisruptionbudget", namespaced: true,
        short: &["pdb"], categories: NONE, verbs: ALL_VERBS, subresources: &[status()]),
    // rbac.authorization.k8s.io/v1
    resource!(group: "rbac.authorization.k8s.io", versions: V1, kind: "ClusterRoleBinding",
        plural: "clusterrolebindings", singular: "clusterrolebinding", namespaced: false,
        short: &[], categories: NONE, verbs: ALL_VERBS, subresources: &[]),
    resource!(group: "rbac.authorization.k8s.io", versions: V1, kind: "ClusterRole",
        plural: "clusterroles", singular: "clusterrole", namespaced: false, short: &[],
        categories: NONE, verbs: ALL_VERBS, subresources: &[]),
    resource!(group: "rbac.authorization.k8s.io", versions: V1, kind: "RoleBinding",
        plural: "rolebindings", singular: "rolebinding", namespaced: true, short: &[],
        categories: NONE, verbs: ALL_VERBS, subresources: &[]),
    resource!(group: "rbac.authorization.k8s.io", versions: V1, kind: "Role",
        plural: "roles", singular: "role", namespaced: true, short: &[], categories: NONE,
        verbs: ALL_VERBS, subresources: &[]),
    // storage.k8s.io/v1
    resource!(group: "storage.k8s.io", versions: V1, kind: "StorageClass",
        plural: "storageclasses", singular: "storageclass", namespaced: false, short: &["sc"],
        categories: NONE, verbs: ALL_VERBS, subresources: &[]),
    // coordination.k8s.io/v1
    resource!(group: "coordination.k8s.io", versions: V1, kind: "Lease", plural: "leases",
        singular: "lease", namespaced: true, short: &[], categories: NONE,
        verbs: ALL_VERBS, subresources: &[]),
    // discovery.k8s.io/v1
    resource!(group: "discovery.k8s.io", versions: V1, kind: "EndpointSlice",
        plural: "endpointslices", singular: "endpointslice", namespaced: true, short: &[],
        categories: NONE, verbs: ALL_VERBS, subresources: &[]),
];

/// metrics.k8s.io/v1beta1, served by the metrics pipeline rather than the store; only in
/// a registry built with [`Registry::with_metrics`].
static METRICS: &[ResourceInfo] = &[
    resource!(group: "metrics.k8s.io", versions: &["v1beta1"], kind: "NodeMetrics",
        plural: "nodes", singular: "", namespaced: false, short: &[], categories: NONE,
        verbs: READ_VERBS, subresources: &[], stored: false),
    resource!(group: "metrics.k8s.io", versions: &["v1beta1"], kind: "PodMetrics",
        plural: "pods", singular: "", namespaced: true, short: &[], categories: NONE,
        verbs: READ_VERBS, subresources: &[], stored: false),
];

/// The set of resources one API server serves.
#[derive(Debug, Clone)]
pub struct Registry {
    resources: Vec<&'static ResourceInfo>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Registry {
    /// The built-in resources, without metrics.
    pub fn builtin() -> Self {
        Self {
            resources: BUILTIN.iter().collect(),
        }
    }

    /// The built-in resources plus `metrics.k8s.io/v1beta1` (nodes, pods).
    pub fn with_metrics() -> Self {
        Self {
            resources: BUILTIN.iter().chain(METRICS.iter()).collect(),
        }
    }

    /// A registry of exactly these resources, in this (discovery) order.
    pub fn from_resources(resources: Vec<&'static ResourceInfo>) -> Self {
        Self { resources }
    }

    /// This registry plus `metrics.k8s.io/v1beta1`, unless it already has it.
    pub fn plus_metrics(mut self) -> Self {
        if !self.resources.iter().any(|r| r.group == "metrics.k8s.io") {
            self.resources.extend(METRICS.iter());
        }
        self
    }

    /// Every resource, in discovery order.
    pub fn all(&self) -> impl Iterator<Item = &'static ResourceInfo> + '_ {
        self.resources.iter().copied()
    }

    /// Groups in discovery order (core first), each with its versions, preferred first.
    pub fn groups(&self) -> Vec<GroupVersions> {
        let mut groups: Vec<GroupVersions> = Vec::new();
        for resource in self.all() {
            let entry = match groups.iter_mut().find(|g| g.group == resource.group) {
                Some(entry) => entry,
                None => {
                    groups.push(GroupVersions {
                        group: resource.group,
                        versions: Vec::new(),
                    });
                    let last = groups.len() - 1;
                    &mut groups[last]
                }
            };
            for version in resource.versions {
                if !entry.versions.contains(version) {
                    entry.versions.push(version);
                }
            }
        }
        groups
    }

    /// Resources served at `group`/`version`, in discovery order.
    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'static ResourceInfo> + 'a {
        self.all()
            .filter(move |r| r.group == group && r.serves_version(version))
    }

    /// The resource at `group`/`version`/`plural`, as a URL addresses it.
    pub fn lookup(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<&'static ResourceInfo> {
        self.all()
            .find(|r| r.group == group && r.plural == plural && r.serves_version(version))
    }

    /// The resource of `kind` in `group` (any version).
    pub fn by_kind(&self, group: &str, kind: &str) -> Option<&'static ResourceInfo> {
        self.all().find(|r| r.group == group && r.kind == kind)
    }

    /// Resolves what a user typed (`deploy`, `deployments`, `Deployment`,
    /// `deployments.apps`, `hpa`) the way kubectl does: plural, singular, short name or kind,
    /// case-insensitively, optionally qualified with `.group`. Core and higher-priority
    /// groups win, so `ev` is the core Event.
    pub fn resolve(&self, name: &str) -> Option<&'static ResourceInfo> {
        let wanted = name.to_ascii_lowercase();
        let matches = |r: &ResourceInfo, n: &str| {
            r.plural == n
                || (!r.singular.is_empty() && r.singular == n)
                || r.short_names.contains(&n)
                || r.kind.eq_ignore_ascii_case(n)
        };
        if let Some(found) = self.all().find(|r| matches(r, &wanted)) {
            return Some(found);
        }
        // `deployments.apps`, `hpa.autoscaling`, then `deployments.v1.apps`.
        let (resource, qualifier) = wanted.split_once('.')?;
        if let Some(found) = self
            .all()
            .find(|r| r.group == qualifier && matches(r, resource))
        {
            return Some(found);
        }
        let (version, group) = qualifier.split_once('.')?;
        self.all()
            .find(|r| r.group == group && r.serves_version(version) && matches(r, resource))
    }

    /// Resources in `category` (`all`), in discovery order.
    pub fn in_category<'a>(
        &'a self,
        category: &'a str,
    ) -> impl Iterator<Item = &'static ResourceInfo> + 'a {
        self.all().filter(move |r| r.categories.contains(&category))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_by_group_version_plural() {
        let registry = Registry::builtin();
        let deployments = registry.lookup("apps", "v1", "deployments").unwrap();
        assert_eq!(deployments.kind, "Deployment");
        assert!(deployments.namespaced);
        assert!(registry.lookup("apps", "v2", "deployments").is_none());
        assert!(registry.lookup("", "v1", "deployments").is_none());
        assert!(!registry.lookup("", "v1", "nodes").unwrap().namespaced);
    }

    #[test]
    fn resolves_what_kubectl_users_type() {
        let registry = Registry::builtin();
        for (typed, group, plural) in [
            ("deploy", "apps", "deployments"),
            ("deployment", "apps", "deployments"),
            ("Deployment", "apps", "deployments"),
            ("deployments.apps", "apps", "deployments"),
            ("po", "", "pods"),
            ("svc", "", "services"),
            ("hpa", "autoscaling", "horizontalpodautoscalers"),
            ("ev", "", "events"),
            ("events.events.k8s.io", "events.k8s.io", "events"),
            ("cj", "batch", "cronjobs"),
            ("pdb", "policy", "poddisruptionbudgets"),
            ("ns", "", "namespaces"),
            ("endpoints", "", "endpoints"),
            ("leases", "coordination.k8s.io", "leases"),
            ("sc", "storage.k8s.io", "storageclasses"),
            ("pvc", "", "persistentvolumeclaims"),
            ("deployments.v1.apps", "apps", "deployments"),
            (
                "hpa.v1.autoscaling",
                "autoscaling",
                "horizontalpodautoscalers",
            ),
        ] {
            let found = registry
                .resolve(typed)
                .unwrap_or_else(|| panic!("{typed} unresolved"));
            assert_eq!((found.group, found.plural), (group, plural), "{typed}");
        }
        assert!(registry.resolve("nosuchthing").is_none());
        assert!(registry.resolve("deployments.batch").is_none());
        assert!(registry.resolve("deployments.v2.apps").is_none());
    }

    #[test]
    fn storage_keys_follow_the_registry_layout() {
        let registry = Registry::builtin();
        let pods = registry.lookup("", "v1", "pods").unwrap();
        assert_eq!(
            pods.storage_key(Some("default"), "web"),
            "/registry/pods/default/web"
        );
        assert_eq!(
            pods.storage_prefix_in(Some("default")),
            "/registry/pods/default/"
        );
        assert_eq!(pods.storage_prefix_in(None), "/registry/pods/");
        let deploy = registry.lookup("apps", "v1", "deployments").unwrap();
        assert_eq!(
            deploy.storage_key(Some("default"), "web"),
            "/registry/apps/deployments/default/web"
        );
        let nodes = registry.lookup("", "v1", "nodes").unwrap();
        assert_eq!(
            nodes.storage_key(Some("ignored"), "n1"),
            "/registry/nodes/n1"
        );
        // Both event APIs share one stored form.
        let core_events = registry.lookup("", "v1", "events").unwrap();
        let new_events = registry.lookup("events.k8s.io", "v1", "events").unwrap();
        assert_eq!(core_events.storage_prefix(), new_events.storage_prefix());
        // Both HPA versions are one resource with one prefix.
        let hpa_v1 = registry
            .lookup("autoscaling", "v1", "horizontalpodautoscalers")
            .unwrap();
        let hpa_v2 = registry
            .lookup("autoscaling", "v2", "horizontalpodautoscalers")
            .unwrap();
        assert_eq!(hpa_v1, hpa_v2);
        assert_eq!(hpa_v2.preferred_version(), "v2");
        assert_eq!(
            hpa_v2.storage_prefix(),
            "/registry/autoscaling/horizontalpodautoscalers/"
        );
    }

    #[test]
    fn subresources_carry_their_own_kinds() {
        let registry = Registry::builtin();
        let deploy = registry.lookup("apps", "v1", "deployments").unwrap();
        let scale = deploy.subresource("scale").unwrap();
        let kind = |group: &'static str, kind: &'static str| ResponseKind {
            group,
            version: "v1".to_owned(),
            kind,
        };
        assert_eq!(
            scale.response_kind(deploy, "v1"),
            kind("autoscaling", "Scale")
        );
        assert_eq!(scale.verbs, &[Verb::Get, Verb::Patch, Verb::Update]);
        let status = deploy.subresource("status").unwrap();
        assert_eq!(
            status.response_kind(deploy, "v1"),
            kind("apps", "Deployment")
        );

        let pods = registry.lookup("", "v1", "pods").unwrap();
        let binding = pods.subresource("binding").unwrap();
        assert_eq!(binding.verbs, &[Verb::Create]);
        assert_eq!(binding.response_kind(pods, "v1"), kind("", "Binding"));
        let eviction = pods.subresource("eviction").unwrap();
        assert_eq!(
            eviction.response_kind(pods, "v1"),
            kind("policy", "Eviction")
        );
        let hpa = registry
            .lookup("autoscaling", "v1", "horizontalpodautoscalers")
            .unwrap();
        let hpa_status = hpa.subresource("status").unwrap().response_kind(hpa, "v1");
        assert_eq!(hpa_status.version, "v1");
        assert_eq!(pods.subresource("log").unwrap().verbs, &[Verb::Get]);
        let ns = registry.lookup("", "v1", "namespaces").unwrap();
        assert_eq!(ns.subresource("finalize").unwrap().verbs, &[Verb::Update]);
        assert!(!ns.supports(Verb::DeleteCollection));
        assert!(pods.supports(Verb::DeleteCollection));
    }

    #[test]
    fn verbs_round_trip_through_their_names() {
        for verb in ALL_VERBS {
            assert_eq!(verb.as_str().parse::<Verb>(), Ok(*verb));
        }
        assert_eq!(
            "connect".parse::<Verb>(),
            Err(UnknownVerb("connect".to_owned()))
        );
    }

    #[test]
    fn all_category_matches_upstream() {
        let registry = Registry::builtin();
        let mut all: Vec<&str> = registry.in_category("all").map(|r| r.plural).collect();
        all.sort_unstable();
        assert_eq!(
            all,
            [
                "cronjobs",
                "daemonsets",
                "deployments",
                "horizontalpodautoscalers",
                "jobs",
                "pods",
                "replicasets",
                "replicationcontrollers",
                "services",
                "statefulsets",
            ]
        );
    }

    #[test]
    fn groups_are_ordered_with_preferred_versions_first() {
        let groups = Registry::builtin().groups();
        let names: Vec<&str> = groups.iter().map(|g| g.group).collect();
        assert_eq!(
            names,
            [
                "",
                "apps",
                "events.k8s.io",
                "authentication.k8s.io",
                "authorization.k8s.io",
                "autoscaling",
                "batch",
                "policy",
                "rbac.authorization.k8s.io",
                "storage.k8s.io",
                "coordination.k8s.io",
                "discovery.k8s.io"
            ]
        );
        let autoscaling = groups.iter().find(|g| g.group == "autoscaling").unwrap();
        assert_eq!(autoscaling.versions, ["v2", "v1"]);
        let with_metrics = Registry::with_metrics().groups();
        assert_eq!(
            Registry::builtin().plus_metrics().plus_metrics().groups(),
            with_metrics
        );
        assert_eq!(with_metrics.last().unwrap().group, "metrics.k8s.io");
        assert!(
            !Registry::builtin()
                .all()
                .any(|r| r.group == "metrics.k8s.io")
        );
    }

    #[test]
    fn api_versions_split_into_group_and_version() {
        assert_eq!(split_api_version("apps/v1"), ("apps", "v1"));
        assert_eq!(split_api_version("v1"), ("", "v1"));
        assert_eq!(split_api_version("autoscaling/v2"), ("autoscaling", "v2"));
        let registry = Registry::builtin();
        let (group, _) = split_api_version("events.k8s.io/v1");
        assert_eq!(
            registry.by_kind(group, "Event").unwrap().group,
            "events.k8s.io"
        );
    }

    #[test]
    fn qualified_names_match_apiserver_messages() {
        let registry = Registry::builtin();
        let deploy = registry.lookup("apps", "v1", "deployments").unwrap();
        assert_eq!(deploy.group_resource(), "deployments.apps");
        assert_eq!(deploy.group_kind(), "Deployment.apps");
        assert_eq!(deploy.api_version("v1"), "apps/v1");
        let pods = registry.lookup("", "v1", "pods").unwrap();
        assert_eq!(pods.group_resource(), "pods");
        assert_eq!(pods.api_version("v1"), "v1");
    }

    #[test]
    fn every_resource_is_well_formed() {
        for r in Registry::with_metrics().all() {
            assert!(!r.versions.is_empty(), "{}", r.plural);
            assert_eq!(r.plural, r.plural.to_ascii_lowercase());
            if r.stored {
                assert_eq!(r.singular, r.kind.to_ascii_lowercase(), "{}", r.plural);
            }
        }
    }
}
