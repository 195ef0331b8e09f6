//! One StatefulSet's sync: record the template's revision, claim pods, decide, make claims
//! and pods, delete pods, publish status, trim the history.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use tugboat_api::selector::Selector;

use super::StatefulSetController;
use super::decide::decide;
use crate::error::kube_status_is;
use crate::framework::claim::{claim_objects, owner_still_current};
use crate::framework::events::{self, EventType};
use crate::framework::history::{
    REVISION_HASH_LABEL, beyond_history_limit, record_revision, template_hash, template_of,
};
use crate::framework::ownership::{controller_of, controller_ref};
use crate::framework::{ObjectKey, Reconciler, Requeue};
use crate::{Error, Result};

const COMPONENT: &str = "statefulset-controller";

impl Reconciler for StatefulSetController {
    fn name(&self) -> &'static str {
        "statefulset"
    }

    async fn sync(&self, key: &ObjectKey) -> Result<Requeue> {
        let set_key = key.to_string();
        let Some(set) = self.cached_set(key) else {
            self.expectations.delete(&set_key);
            return Ok(Requeue::Never);
        };
        if set.metadata.deletion_timestamp.is_some() || !self.expectations.satisfied(&set_key) {
            return Ok(Requeue::Never);
        }
        let spec = set.spec.clone().unwrap_or_default();
        let selector = Selector::from_label_selector(Some(&spec.selector)).map_err(|source| {
            Error::InvalidSelector {
                kind: "StatefulSet",
                key: set_key.clone(),
                source,
            }
        })?;
        let uid = set.metadata.uid.as_deref();
        let revisions: Vec<Arc<ControllerRevision>> = self
            .revisions
            .state()
            .into_iter()
            .filter(|r| r.metadata.namespace == set.metadata.namespace)
            .filter(|r| controller_of(&r.metadata).is_some_and(|o| Some(o.uid.as_str()) == uid))
            .collect();
        let revision_refs: Vec<&ControllerRevision> = revisions.iter().map(Arc::as_ref).collect();
        let hash = template_hash(
            &spec.template,
            set.status.as_ref().and_then(|s| s.collision_count),
        );
        let update_revision = record_revision(
            &self.client,
            set.as_ref(),
            &spec.template,
            &hash,
            &revision_refs,
        )
        .await?;

        let candidates: Vec<Arc<Pod>> = self
            .pods
            .state()
            .into_iter()
            .filter(|pod| pod.metadata.namespace.as_deref() == Some(key.namespace.as_str()))
            .collect();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
        let owned = claim_objects(set.as_ref(), &selector, &pods, candidates, || {
            owner_still_current(&self.client, set.as_ref())
        })
        .await?;
        let owned_refs: Vec<&Pod> = owned.iter().map(Arc::as_ref).collect();
        let decision = decide(&set, &update_revision, &owned_refs, Timestamp::now());

        let manage = async {
            for name in &decision.delete {
                self.expectations
                    .expect_deletions(&set_key, [format!("{}/{name}", key.namespace)]);
                match pods.delete(name, &DeleteParams::default()).await {
                    Ok(_) => {
                        self.event(
                            &set,
                            "SuccessfulDelete",
                            &format!("delete Pod {name} in StatefulSet {} successful", key.name),
                        )
                        .await
                    }
                    Err(error) => {
                        self.expectations
                            .deletion_observed(&set_key, &format!("{}/{name}", key.namespace));
                        if !kube_status_is(&error, 404) {
                            return Err(Error::from(error));
                        }
                    }
                }
            }
            for (ordinal, revision) in &decision.create {
                let template = if *revision == update_revision {
                    Some(spec.template.clone())
                } else {
                    revisions
                        .iter()
                        .find(|r| r.metadata.name.as_deref() == Some(revision.as_str()))
                        .and_then(|r| template_of(r))
                };
                let template = template.unwrap_or_else(|| spec.template.clone());
                self.ensure_claims(&set, *ordinal).await?;
                let pod = pod_for_ordinal(&set, &template, revision, *ordinal);
                self.expectations.expect_creations(&set_key, 1);
                match pods.create(&PostParams::default(), &pod).await {
                    Ok(created) => {
                        let name = created.metadata.name.unwrap_or_default();
                        self.event(
                            &set,
                            "SuccessfulCreate",
                            &format!("create Pod {name} in StatefulSet {} successful", key.name),
                        )
                        .await;
                    }
                    Err(error) => {
                        self.expectations.creation_observed(&set_key);
                        if !kube_status_is(&error, 409) {
                            return Err(Error::from(error));
                        }
                    }
                }
            }
            Ok(())
        }
        .await;
        if set.status.as_ref() != Some(&decision.status) {
            let mut published = set.as_ref().clone();
            published.status = Some(decision.status.clone());
            Api::<StatefulSet>::namespaced(self.client.clone(), &key.namespace)
                .replace_status(&key.name, &PostParams::default(), &published)
                .await?;
        }
        manage?;

        let in_use: Vec<String> = owned_refs
            .iter()
            .filter_map(|p| p.metadata.labels.as_ref()?.get(REVISION_HASH_LABEL))
            .filter_map(|name| {
                revisions
                    .iter()
                    .find(|r| r.metadata.name.as_deref() == Some(name.as_str()))
                    .and_then(|r| {
                        r.metadata
                            .labels
                            .as_ref()?
                            .get(REVISION_HASH_LABEL)
                            .cloned()
                    })
            })
            .chain(decision.status.current_revision.iter().filter_map(|name| {
                revisions
                    .iter()
                    .find(|r| r.metadata.name.as_deref() == Some(name.as_str()))
                    .and_then(|r| {
                        r.metadata
                            .labels
                            .as_ref()?
                            .get(REVISION_HASH_LABEL)
                            .cloned()
                    })
            }))
            .collect();
        let in_use: Vec<&str> = in_use.iter().map(String::as_str).collect();
        let history: Api<ControllerRevision> = Api::namespaced(self.client.clone(), &key.namespace);
        let limit = spec.revision_history_limit.unwrap_or(10);
        for name in beyond_history_limit(&revision_refs, &hash, &in_use, limit) {
            match history.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(error) if kube_status_is(&error, 404) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(Requeue::Never)
    }
}

impl StatefulSetController {
    async fn event(&self, set: &StatefulSet, reason: &str, message: &str) {
        events::record(
            &self.client,
            COMPONENT,
            set,
            EventType::Normal,
            reason,
            message,
        )
        .await;
    }

    /// Creates the pod's claims from the volume claim templates, unless they exist (claims
    /// outlive their pods, so a re-created pod gets its data back).
    async fn ensure_claims(&self, set: &StatefulSet, ordinal: i32) -> Result<()> {
        let namespace = set.metadata.namespace.as_deref().unwrap_or_default();
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), namespace);
        for claim in claims_for_ordinal(set, ordinal) {
            match claims.create(&PostParams::default(), &claim).await {
                Ok(_) => {}
                Err(error) if kube_status_is(&error, 409) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }
}

fn claim_name(template: &str, set: &str, ordinal: i32) -> String {
    format!("{template}-{set}-{ordinal}")
}

/// The claims of pod `ordinal`: one per volume claim template.
pub fn claims_for_ordinal(set: &StatefulSet, ordinal: i32) -> Vec<PersistentVolumeClaim> {
    let name = set.metadata.name.clone().unwrap_or_default();
    let spec = set.spec.clone().unwrap_or_default();
    let selector_labels = spec.selector.match_labels.clone().unwrap_or_default();
    spec.volume_claim_templates
        .unwrap_or_default()
        .into_iter()
        .map(|template| {
            let template_name = template.metadata.name.clone().unwrap_or_default();
            let mut labels = template.metadata.labels.clone().unwrap_or_default();
            labels.extend(selector_labels.clone());
            PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(claim_name(&template_name, &name, ordinal)),
                    namespace: set.metadata.namespace.clone(),
                    labels: Some(labels),
                    annotations: template.metadata.annotations.clone(),
                    ..Default::default()
                },
                spec: template.spec,
                status: None,
            }
        })
        .collect()
}

/// Pod `ordinal` of `set` from `template` (revision `revision`): its stable name and host
/// name under the governing Service, the identity labels, and its claims as volumes.
pub fn pod_for_ordinal(
    set: &StatefulSet,
    template: &PodTemplateSpec,
    revision: &str,
    ordinal: i32,
) -> Pod {
    let set_name = set.metadata.name.clone().unwrap_or_default();
    let spec = set.spec.clone().unwrap_or_default();
    let name = format!("{set_name}-{ordinal}");
    let meta = template.metadata.clone().unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    labels.insert(REVISION_HASH_LABEL.into(), revision.to_owned());
    labels.insert("statefulset.kubernetes.io/pod-name".into(), name.clone());
    labels.insert("apps.kubernetes.io/pod-index".into(), ordinal.to_string());
    let mut pod_spec = template.spec.clone().unwrap_or_default();
    pod_spec.hostname = Some(name.clone());
    if let Some(service) = spec.service_name.clone().filter(|s| !s.is_empty()) {
        pod_spec.subdomain = Some(service);
    }
    for claim in spec.volume_claim_templates.iter().flatten() {
        let claim_template = claim.metadata.name.clone().unwrap_or_default();
        let volumes = pod_spec.volumes.get_or_insert_with(Vec::new);
        volumes.retain(|v| v.name != claim_template);
        volumes.push(Volume {
            name: claim_template.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(&claim_template, &set_name, ordinal),
                read_only: None,
            }),
            ..Default::default()
        });
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: meta.annotations,
            owner_references: Some(vec![controller_ref(set)]),
            ..Default::default()
        },
        spec: Some(pod_spec),
        status: None,
    }
}
