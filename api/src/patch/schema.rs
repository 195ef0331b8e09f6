//! Strategic-merge-patch metadata for the built-in Kubernetes types.
//!
//! Upstream derives this from the Go struct tags `patchStrategy` and `patchMergeKey` (published in
//! OpenAPI as `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key`). k8s-openapi does not
//! expose those tags (its `DeepMerge` follows `x-kubernetes-list-type`, a different thing), so the
//! tables below are hand-written from `k8s.io/api` v0.32 and `k8s.io/apimachinery` v0.32.
//!
//! Only fields that change the outcome of a patch are listed: lists with the `merge` strategy,
//! maps with `retainKeys` or `replace`, and the nested objects that lead to them. A field that is
//! not listed behaves as upstream's untagged fields do: maps merge key by key, lists are replaced
//! whole (atomic). That is also how fields of unknown types and CRDs are treated.

/// A reference to the patch metadata of one object type.
pub type SchemaRef = &'static Schema;

/// The patch metadata of one object type: its fields that need special treatment.
#[derive(Debug)]
pub struct Schema {
    /// The type's name, for error messages and debugging (e.g. `io.k8s.api.core.v1.PodSpec`).
    pub name: &'static str,
    /// The fields with patch metadata; every other field has [`Field::untagged`] metadata.
    pub fields: &'static [Field],
}

/// How a field is patched, as its Go struct tags say.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The field's JSON name.
    pub name: &'static str,
    /// The `patchStrategy` tag without `retainKeys`.
    pub strategy: PatchStrategy,
    /// Whether the `patchStrategy` tag includes `retainKeys` (used when computing patches).
    pub retain_keys: bool,
    /// The `patchMergeKey` tag: the key identifying items of a merged list of objects.
    pub merge_key: Option<&'static str>,
    /// The metadata of the field's value, or of the list's items for a list.
    pub schema: SchemaRef,
}

/// The `patchStrategy` of a field, without `retainKeys`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchStrategy {
    /// No strategy: maps merge key by key, lists are replaced whole.
    Default,
    /// `merge`: lists merge item by item (by merge key for objects, by value for primitives).
    Merge,
    /// `replace`: the patch value replaces the field whole.
    Replace,
}

impl Schema {
    /// The metadata of a type we know nothing about: every field is untagged.
    pub const UNKNOWN: Schema = Schema {
        name: "unknown",
        fields: &[],
    };

    /// The patch metadata of the field `name`; untagged metadata for fields not in the table.
    pub fn field(&'static self, name: &str) -> Field {
        self.fields
            .iter()
            .find(|field| field.name == name)
            .copied()
            // Untagged metadata never needs the name, so it need not outlive the lookup.
            .unwrap_or(Field::untagged(""))
    }
}

impl Field {
    /// A field without patch tags and with a value of unknown type.
    pub const fn untagged(name: &'static str) -> Field {
        Field {
            name,
            strategy: PatchStrategy::Default,
            retain_keys: false,
            merge_key: None,
            schema: &Schema::UNKNOWN,
        }
    }
}

// === table builders ===

/// A nested object (or a list of objects replaced whole) whose own fields have metadata.
const fn object(name: &'static str, schema: SchemaRef) -> Field {
    Field {
        schema,
        ..Field::untagged(name)
    }
}

/// `patchStrategy:"merge" patchMergeKey:"<key>"`: a list of objects merged by `key`.
const fn merge_by(name: &'static str, key: &'static str, schema: SchemaRef) -> Field {
    Field {
        strategy: PatchStrategy::Merge,
        merge_key: Some(key),
        schema,
        ..Field::untagged(name)
    }
}

/// `patchStrategy:"merge,retainKeys" patchMergeKey:"<key>"`.
const fn merge_retaining_keys_by(
    name: &'static str,
    key: &'static str,
    schema: SchemaRef,
) -> Field {
    Field {
        retain_keys: true,
        ..merge_by(name, key, schema)
    }
}

/// `patchStrategy:"merge"` on a list of primitives: a set union.
const fn merge_primitives(name: &'static str) -> Field {
    Field {
        strategy: PatchStrategy::Merge,
        ..Field::untagged(name)
    }
}

/// `patchStrategy:"retainKeys"` on an object (a union whose unset members are cleared).
const fn retaining_keys(name: &'static str, schema: SchemaRef) -> Field {
    Field {
        retain_keys: true,
        schema,
        ..Field::untagged(name)
    }
}

/// `patchStrategy:"replace"` on an object.
const fn replaced(name: &'static str) -> Field {
    Field {
        strategy: PatchStrategy::Replace,
        ..Field::untagged(name)
    }
}

/// Merge key `type` is used by every `conditions` list.
const fn conditions() -> Field {
    merge_by("conditions", "type", &Schema::UNKNOWN)
}

const fn schema(name: &'static str, fields: &'static [Field]) -> Schema {
    Schema { name, fields }
}

// === meta/v1 ===

/// `ObjectMeta`.
pub static OBJECT_META: Schema = schema(
    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
    &[
        merge_by("ownerReferences", "uid", &Schema::UNKNOWN),
        merge_primitives("finalizers"),
    ],
);

/// A top-level kind whose only tagged fields are in its `metadata`.
pub static METADATA_ONLY: Schema = schema("metadata-only", &[object("metadata", &OBJECT_META)]);

/// A `status` whose only tagged field is `conditions` (merge key `type`).
static CONDITIONS_STATUS: Schema = schema("status-with-conditions", &[conditions()]);

// === core/v1 ===

/// `Container` (also `EphemeralContainer`, which inlines the same fields).
pub static CONTAINER: Schema = schema(
    "io.k8s.api.core.v1.Container",
    &[
        merge_by("ports", "containerPort", &Schema::UNKNOWN),
        merge_by("env", "name", &Schema::UNKNOWN),
        merge_by("volumeMounts", "mountPath", &Schema::UNKNOWN),
        merge_by("volumeDevices", "devicePath", &Schema::UNKNOWN),
    ],
);

/// `PodSpec`. `tolerations`, `readinessGates` and `resizePolicy` are untagged (atomic) upstream.
pub static POD_SPEC: Schema = schema(
    "io.k8s.api.core.v1.PodSpec",
    &[
        merge_retaining_keys_by("volumes", "name", &Schema::UNKNOWN),
        merge_by("initContainers", "name", &CONTAINER),
        merge_by("containers", "name", &CONTAINER),
        merge_by("ephemeralContainers", "name", &CONTAINER),
        merge_by("imagePullSecrets", "name", &Schema::UNKNOWN),
        merge_by("hostAliases", "ip", &Schema::UNKNOWN),
        merge_by("topologySpreadConstraints", "topologyKey", &Schema::UNKNOWN),
        merge_by("schedulingGates", "name", &Schema::UNKNOWN),
        merge_retaining_keys_by("resourceClaims", "name", &Schema::UNKNOWN),
    ],
);

/// `PodStatus`. `containerStatuses` is untagged (atomic).
pub static POD_STATUS: Schema = schema(
    "io.k8s.api.core.v1.PodStatus",
    &[
        conditions(),
        merge_by("hostIPs", "ip", &Schema::UNKNOWN),
        merge_by("podIPs", "ip", &Schema::UNKNOWN),
        merge_retaining_keys_by("resourceClaimStatuses", "name", &Schema::UNKNOWN),
    ],
);

/// `Pod`.
pub static POD: Schema = schema(
    "io.k8s.api.core.v1.Pod",
    &[
        object("metadata", &OBJECT_META),
        object("spec", &POD_SPEC),
        object("status", &POD_STATUS),
    ],
);

/// `PodTemplateSpec`.
pub static POD_TEMPLATE_SPEC: Schema = schema(
    "io.k8s.api.core.v1.PodTemplateSpec",
    &[object("metadata", &OBJECT_META), object("spec", &POD_SPEC)],
);

/// `PodTemplate`.
pub static POD_TEMPLATE: Schema = schema(
    "io.k8s.api.core.v1.PodTemplate",
    &[
        object("metadata", &OBJECT_META),
        object("template", &POD_TEMPLATE_SPEC),
    ],
);

/// A controller spec whose only tagged field is its pod `template`.
static TEMPLATED_SPEC: Schema = schema(
    "spec-with-pod-template",
    &[object("template", &POD_TEMPLATE_SPEC)],
);

/// A workload with `spec.template` and `status.conditions` (ReplicaSet, StatefulSet, DaemonSet,
/// ReplicationController, Job).
static TEMPLATED_WORKLOAD: Schema = schema(
    "workload-with-pod-template",
    &[
        object("metadata", &OBJECT_META),
        object("spec", &TEMPLATED_SPEC),
        object("status", &CONDITIONS_STATUS),
    ],
);

/// A top-level kind with `status.conditions` (Namespace, PersistentVolumeClaim,
/// HorizontalPodAutoscaler v2).
static CONDITIONS_KIND: Schema = schema(
    "kind-with-status-conditions",
    &[
        object("metadata", &OBJECT_META),
        object("status", &CONDITIONS_STATUS),
    ],
);

/// `Service`: `spec.ports` merge by `port`.
pub static SERVICE: Schema = schema(
    "io.k8s.api.core.v1.Service",
    &[
        object("metadata", &OBJECT_META),
        object(
            "spec",
            &schema(
                "io.k8s.api.core.v1.ServiceSpec",
                &[merge_by("ports", "port", &Schema::UNKNOWN)],
            ),
        ),
        object("status", &CONDITIONS_STATUS),
    ],
);

/// `Node`. `spec.taints` is untagged upstream (atomic).
pub static NODE: Schema = schema(
    "io.k8s.api.core.v1.Node",
    &[
        object("metadata", &OBJECT_META),
        object(
            "spec",
            &schema(
                "io.k8s.api.core.v1.NodeSpec",
                &[merge_primitives("podCIDRs")],
            ),
        ),
        object(
            "status",
            &schema(
                "io.k8s.api.core.v1.NodeStatus",
                &[
                    conditions(),
                    merge_by("addresses", "type", &Schema::UNKNOWN),
                ],
            ),
        ),
    ],
);

/// `ServiceAccount`: `secrets` merge by `name` (`imagePullSecrets` is untagged).
pub static SERVICE_ACCOUNT: Schema = schema(
    "io.k8s.api.core.v1.ServiceAccount",
    &[
        object("metadata", &OBJECT_META),
        merge_by("secrets", "name", &Schema::UNKNOWN),
    ],
);

// === apps/v1 ===

/// `Deployment`: `spec.strategy` is a `retainKeys` union.
pub static DEPLOYMENT: Schema = schema(
    "io.k8s.api.apps.v1.Deployment",
    &[
        object("metadata", &OBJECT_META),
        object(
            "spec",
            &schema(
                "io.k8s.api.apps.v1.DeploymentSpec",
                &[
                    object("template", &POD_TEMPLATE_SPEC),
                    retaining_keys("strategy", &Schema::UNKNOWN),
                ],
            ),
        ),
        object("status", &CONDITIONS_STATUS),
    ],
);

// === batch/v1 ===

/// `CronJob`: `spec.jobTemplate.spec.template`.
pub static CRON_JOB: Schema = schema(
    "io.k8s.api.batch.v1.CronJob",
    &[
        object("metadata", &OBJECT_META),
        object(
            "spec",
            &schema(
                "io.k8s.api.batch.v1.CronJobSpec",
                &[object(
                    "jobTemplate",
                    &schema(
                        "io.k8s.api.batch.v1.JobTemplateSpec",
                        &[
                            object("metadata", &OBJECT_META),
                            object("spec", &TEMPLATED_SPEC),
                        ],
                    ),
                )],
            ),
        ),
    ],
);

// === policy/v1 ===

/// `PodDisruptionBudget`: `spec.selector` is `patchStrategy:"replace"`.
pub static POD_DISRUPTION_BUDGET: Schema = schema(
    "io.k8s.api.policy.v1.PodDisruptionBudget",
    &[
        object("metadata", &OBJECT_META),
        object(
            "spec",
            &schema(
                "io.k8s.api.policy.v1.PodDisruptionBudgetSpec",
                &[replaced("selector")],
            ),
        ),
        object("status", &CONDITIONS_STATUS),
    ],
);

// === storage.k8s.io/v1, admissionregistration.k8s.io/v1 ===

/// `CSINode`: `spec.drivers` merge by `name`.
pub static CSI_NODE: Schema = schema(
    "io.k8s.api.storage.v1.CSINode",
    &[
        object("metadata", &OBJECT_META),
        object(
            "spec",
            &schema(
                "io.k8s.api.storage.v1.CSINodeSpec",
                &[merge_by("drivers", "name", &Schema::UNKNOWN)],
            ),
        ),
    ],
);

/// A webhook or policy spec: `matchConditions` (and `variables`) merge by `name`.
static MATCH_CONDITIONS: Schema = schema(
    "io.k8s.api.admissionregistration.v1.MatchConditions",
    &[
        merge_by("matchConditions", "name", &Schema::UNKNOWN),
        merge_by("variables", "name", &Schema::UNKNOWN),
    ],
);

/// `ValidatingWebhookConfiguration` and `MutatingWebhookConfiguration`.
pub static WEBHOOK_CONFIGURATION: Schema = schema(
    "io.k8s.api.admissionregistration.v1.WebhookConfiguration",
    &[
        object("metadata", &OBJECT_META),
        merge_by("webhooks", "name", &MATCH_CONDITIONS),
    ],
);

/// `ValidatingAdmissionPolicy`.
pub static VALIDATING_ADMISSION_POLICY: Schema = schema(
    "io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicy",
    &[
        object("metadata", &OBJECT_META),
        object("spec", &MATCH_CONDITIONS),
    ],
);

/// The patch metadata of a built-in kind, by API group (`""` for the core group) and kind.
///
/// Versions share metadata: the tagged fields of autoscaling v1 and v2 do not conflict. The
/// tables cover every `patchStrategy` tag of `k8s.io/api` v0.32 in the groups listed here.
/// Returns `None` for kinds without built-in metadata (CRDs, aggregated APIs), which do not
/// accept strategic merge patches upstream.
pub fn schema_for(group: &str, kind: &str) -> Option<SchemaRef> {
    let schema: SchemaRef = match (group, kind) {
        ("", "Pod") => &POD,
        ("", "PodTemplate") => &POD_TEMPLATE,
        ("", "ReplicationController") => &TEMPLATED_WORKLOAD,
        ("", "Service") => &SERVICE,
        ("", "Node") => &NODE,
        ("", "ServiceAccount") => &SERVICE_ACCOUNT,
        ("", "Namespace" | "PersistentVolumeClaim") => &CONDITIONS_KIND,
        (
            "",
            "ConfigMap" | "Secret" | "Endpoints" | "Event" | "PersistentVolume" | "LimitRange"
            | "ResourceQuota",
        ) => &METADATA_ONLY,
        ("apps", "Deployment") => &DEPLOYMENT,
        ("apps", "ReplicaSet" | "StatefulSet" | "DaemonSet") => &TEMPLATED_WORKLOAD,
        ("apps", "ControllerRevision") => &METADATA_ONLY,
        ("batch", "Job") => &TEMPLATED_WORKLOAD,
        ("batch", "CronJob") => &CRON_JOB,
        ("autoscaling", "HorizontalPodAutoscaler") => &CONDITIONS_KIND,
        ("policy", "PodDisruptionBudget") => &POD_DISRUPTION_BUDGET,
        ("storage.k8s.io", "CSINode") => &CSI_NODE,
        (
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration",
        ) => &WEBHOOK_CONFIGURATION,
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => {
            &VALIDATING_ADMISSION_POLICY
        }
        ("flowcontrol.apiserver.k8s.io", "FlowSchema" | "PriorityLevelConfiguration") => {
            &CONDITIONS_KIND
        }
        // Kinds without tagged fields: only `metadata` needs metadata.
        ("autoscaling", "Scale")
        | ("coordination.k8s.io", "Lease")
        | ("discovery.k8s.io", "EndpointSlice")
        | ("events.k8s.io", "Event")
        | ("networking.k8s.io", "Ingress" | "IngressClass" | "NetworkPolicy")
        | (
            "rbac.authorization.k8s.io",
            "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding",
        )
        | ("scheduling.k8s.io", "PriorityClass")
        | ("node.k8s.io", "RuntimeClass")
        | ("certificates.k8s.io", "CertificateSigningRequest")
        | ("storage.k8s.io", "StorageClass" | "CSIDriver" | "VolumeAttachment")
        | ("apiextensions.k8s.io", "CustomResourceDefinition") => &METADATA_ONLY,
        _ => return None,
    };
    Some(schema)
}
