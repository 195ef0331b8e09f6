//! The garbage collector's decisions over one snapshot of the object graph, made as upstream's
//! `attemptToDeleteItem` and `processDeletingDependentsItem` make them
//! (kubernetes/pkg/controller/garbagecollector/garbagecollector.go):
//!
//! - An owner reference is *solid* (the owner exists and is not waiting on its dependents),
//!   *dangling* (the owner is gone) or *waiting* (the owner is being deleted in the foreground).
//! - A dependent with a solid owner is kept; its dangling and waiting references are dropped.
//! - A dependent without a solid owner is deleted: in the foreground when a waiting owner wants
//!   its own dependents gone first, else as its finalizers say (Background by default).
//! - An owner deleted with `orphan` loses its references from every dependent, then the
//!   finalizer; one deleted in the foreground loses `foregroundDeletion` once no dependent with
//!   `blockOwnerDeletion` is left.
//! - A foreground cycle is broken as upstream breaks it: a dependent that has a dependent
//!   already deleting its own dependents makes its owner references non-blocking first.
//!
//! Dangling references are only a hint from lists read at different moments: the caller
//! confirms each owner's absence with a live read before acting on it.

use std::collections::{HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// The finalizer of a deletion with `propagationPolicy=Orphan`.
pub const ORPHAN: &str = "orphan";
/// The finalizer of a deletion with `propagationPolicy=Foreground`.
pub const FOREGROUND: &str = "foregroundDeletion";

/// One object of the graph.
#[derive(Debug, Clone, Default)]
pub struct Item {
    /// Index of the item's kind in the caller's table.
    pub kind: usize,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
    pub resource_version: Option<String>,
    pub owners: Vec<OwnerReference>,
    pub finalizers: Vec<String>,
    /// It has a deletionTimestamp.
    pub deleting: bool,
}

impl Item {
    fn has_finalizer(&self, finalizer: &str) -> bool {
        self.finalizers.iter().any(|f| f == finalizer)
    }

    fn deleting_dependents(&self) -> bool {
        self.deleting && self.has_finalizer(FOREGROUND)
    }
}

/// How a dependent is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Background,
    Foreground,
    Orphan,
}

/// One write the collector makes. Items are named by uid.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Delete the item (with a uid precondition), once every owner in `confirm_gone` is
    /// confirmed absent; `unblock_first` makes its owner references non-blocking before.
    Delete {
        uid: String,
        policy: Policy,
        unblock_first: bool,
        confirm_gone: Vec<OwnerReference>,
    },
    /// Remove the owner references with these uids from the item, once every owner in
    /// `confirm_gone` is confirmed absent.
    DropOwners {
        uid: String,
        owners: Vec<String>,
        confirm_gone: Vec<OwnerReference>,
    },
    /// Remove a GC finalizer from an item being deleted.
    RemoveFinalizer {
        uid: String,
        finalizer: &'static str,
    },
}

/// The objects of every listed kind, and which owners point at which dependents.
#[derive(Debug, Default)]
pub struct Graph {
    items: HashMap<String, Item>,
    dependents: HashMap<String, Vec<String>>,
    /// `(group, kind)` of every listed kind: an owner of another kind cannot be looked up, so
    /// a reference to it is never taken as dangling.
    listed_kinds: HashSet<(String, String)>,
}

/// The group of an `apiVersion` (`apps/v1` → `apps`, `v1` → ``).
pub fn group_of(api_version: &str) -> &str {
    api_version
        .rsplit_once('/')
        .map_or("", |(group, _version)| group)
}

impl Graph {
    /// A graph whose lists cover these `(group, kind)` pairs.
    pub fn new(listed_kinds: impl IntoIterator<Item = (String, String)>) -> Self {
        Graph {
            listed_kinds: listed_kinds.into_iter().collect(),
            ..Graph::default()
        }
    }

    pub fn insert(&mut self, item: Item) {
        for owner in &item.owners {
            self.dependents
                .entry(owner.uid.clone())
                .or_default()
                .push(item.uid.clone());
        }
        self.items.insert(item.uid.clone(), item);
    }

    pub fn get(&self, uid: &str) -> Option<&Item> {
        self.items.get(uid)
    }

    /// The items whose owner references name `uid`.
    fn dependents_of(&self, uid: &str) -> impl Iterator<Item = &Item> {
        self.dependents
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|dependent| self.items.get(dependent))
    }

    /// Every write that moves the graph one step toward upstream's end state.
    pub fn plan(&self) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut uids: Vec<&String> = self.items.keys().collect();
        uids.sort(); // a stable order, for tests and logs
        for uid in uids {
            let item = &self.items[uid];
            if item.deleting {
                self.plan_for_deleting_owner(item, &mut actions);
            } else if !item.owners.is_empty() {
                self.plan_for_dependent(item, &mut actions);
            }
        }
        actions
    }

    fn plan_for_deleting_owner(&self, owner: &Item, actions: &mut Vec<Action>) {
        if owner.has_finalizer(ORPHAN) {
            let mut any = false;
            for dependent in self.dependents_of(&owner.uid) {
                any = true;
                actions.push(Action::DropOwners {
                    uid: dependent.uid.clone(),
                    owners: vec![owner.uid.clone()],
                    confirm_gone: Vec::new(),
                });
            }
            if !any {
                actions.push(Action::RemoveFinalizer {
                    uid: owner.uid.clone(),
                    finalizer: ORPHAN,
                });
            }
            return;
        }
        if owner.has_finalizer(FOREGROUND) {
            let blocked = self.dependents_of(&owner.uid).any(|dependent| {
                dependent
                    .owners
                    .iter()
                    .any(|r| r.uid == owner.uid && r.block_owner_deletion == Some(true))
            });
            if !blocked {
                actions.push(Action::RemoveFinalizer {
                    uid: owner.uid.clone(),
                    finalizer: FOREGROUND,
                });
            }
        }
    }

    fn plan_for_dependent(&self, item: &Item, actions: &mut Vec<Action>) {
        let mut solid = false;
        let mut dangling = Vec::new();
        let mut waiting = Vec::new();
        for reference in &item.owners {
            match self.items.get(&reference.uid) {
                Some(owner) if owner.deleting_dependents() => waiting.push(reference.uid.clone()),
                Some(_) => solid = true,
                None if self.listed_kinds.contains(&(
                    group_of(&reference.api_version).to_owned(),
                    reference.kind.clone(),
                )) =>
                {
                    dangling.push(reference.clone());
                }
                // An owner of a kind this collector does not list may well exist.
                None => solid = true,
            }
        }
        if solid {
            if dangling.is_empty() && waiting.is_empty() {
                return;
            }
            let mut owners: Vec<String> = dangling.iter().map(|r| r.uid.clone()).collect();
            owners.extend(waiting);
            actions.push(Action::DropOwners {
                uid: item.uid.clone(),
                owners,
                confirm_gone: dangling,
            });
            return;
        }
        let has_dependents = self.dependents_of(&item.uid).next().is_some();
        let (policy, unblock_first) = if !waiting.is_empty() && has_dependents {
            // Its owner waits for it, and it has dependents of its own: delete those first.
            // If one of them is itself waiting on its dependents, this may be a cycle.
            let cycle = self
                .dependents_of(&item.uid)
                .any(|dependent| dependent.deleting_dependents());
            (Policy::Foreground, cycle)
        } else if item.has_finalizer(ORPHAN) {
            (Policy::Orphan, false)
        } else if item.has_finalizer(FOREGROUND) {
            (Policy::Foreground, false)
        } else {
            (Policy::Background, false)
        };
        actions.push(Action::Delete {
            uid: item.uid.clone(),
            policy,
            unblock_first,
            confirm_gone: dangling,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(owner: &Item, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: owner.name.clone(),
            uid: owner.uid.clone(),
            block_owner_deletion: block.then_some(true),
            controller: None,
        }
    }

    fn item(name: &str) -> Item {
        Item {
            name: name.into(),
            uid: format!("uid-{name}"),
            ..Item::default()
        }
    }

    fn owned_by(name: &str, owners: &[(&Item, bool)]) -> Item {
        Item {
            owners: owners.iter().map(|(o, b)| reference(o, *b)).collect(),
            ..item(name)
        }
    }

    fn deleting(mut item: Item, finalizer: &str) -> Item {
        item.deleting = true;
        item.finalizers.push(finalizer.into());
        item
    }

    fn graph(items: Vec<Item>) -> Graph {
        let mut graph = Graph::new([(String::new(), "ConfigMap".to_owned())]);
        for item in items {
            graph.insert(item);
        }
        graph
    }

    fn delete(uid: &str, policy: Policy) -> Action {
        Action::Delete {
            uid: uid.into(),
            policy,
            unblock_first: false,
            confirm_gone: Vec::new(),
        }
    }

    #[test]
    fn a_dependent_of_a_live_owner_is_kept() {
        let owner = item("owner");
        let dependent = owned_by("dep", &[(&owner, true)]);
        assert_eq!(graph(vec![owner, dependent]).plan(), vec![]);
    }

    #[test]
    fn a_dependent_whose_owner_is_gone_is_deleted_in_the_background_once_confirmed() {
        let owner = item("owner");
        let dependent = owned_by("dep", &[(&owner, false)]);
        let expected_ref = dependent.owners[0].clone();
        assert_eq!(
            graph(vec![dependent]).plan(),
            vec![Action::Delete {
                uid: "uid-dep".into(),
                policy: Policy::Background,
                unblock_first: false,
                confirm_gone: vec![expected_ref],
            }]
        );
    }

    #[test]
    fn an_owner_of_an_unlisted_kind_is_never_taken_as_gone() {
        let owner = item("owner");
        let mut dependent = owned_by("dep", &[(&owner, false)]);
        dependent.owners[0].kind = "Widget".into();
        dependent.owners[0].api_version = "example.com/v1".into();
        assert_eq!(graph(vec![dependent]).plan(), vec![]);
    }

    #[test]
    fn with_one_live_owner_the_dangling_and_waiting_references_are_dropped_not_the_object() {
        // Upstream conformance: "should not delete dependents that have both valid owner and
        // owner that's waiting for dependents to be deleted".
        let live = item("live");
        let waiting = deleting(item("waiting"), FOREGROUND);
        let gone = item("gone");
        let dependent = owned_by("dep", &[(&live, true), (&waiting, true), (&gone, true)]);
        let gone_ref = dependent.owners[2].clone();
        let plan = graph(vec![live, waiting, dependent]).plan();
        assert_eq!(
            plan,
            vec![Action::DropOwners {
                uid: "uid-dep".into(),
                owners: vec!["uid-gone".into(), "uid-waiting".into()],
                confirm_gone: vec![gone_ref],
            }]
        );
    }

    #[test]
    fn foreground_deletes_dependents_first_and_waits_for_the_blocking_ones() {
        let owner = deleting(item("owner"), FOREGROUND);
        let blocking = owned_by("blocking", &[(&owner, true)]);
        let plan = graph(vec![owner.clone(), blocking]).plan();
        assert_eq!(plan, vec![delete("uid-blocking", Policy::Background)]);

        // A dependent already terminating still blocks; a non-blocking one does not.
        let terminating = Item {
            deleting: true,
            ..owned_by("blocking", &[(&owner, true)])
        };
        assert_eq!(graph(vec![owner.clone(), terminating]).plan(), vec![]);
        let loose = owned_by("loose", &[(&owner, false)]);
        assert_eq!(
            graph(vec![owner, loose]).plan(),
            vec![
                delete("uid-loose", Policy::Background),
                Action::RemoveFinalizer {
                    uid: "uid-owner".into(),
                    finalizer: FOREGROUND
                },
            ]
        );
    }

    #[test]
    fn foreground_reaches_grandchildren_before_the_owner_goes() {
        let owner = deleting(item("a-owner"), FOREGROUND);
        let child = owned_by("b-child", &[(&owner, true)]);
        let grandchild = owned_by("c-grandchild", &[(&child, true)]);
        assert_eq!(
            graph(vec![owner, child, grandchild]).plan(),
            vec![delete("uid-b-child", Policy::Foreground)]
        );
    }

    #[test]
    fn orphan_strips_the_references_then_the_finalizer() {
        let owner = deleting(item("owner"), ORPHAN);
        let dependent = owned_by("dep", &[(&owner, true)]);
        assert_eq!(
            graph(vec![owner.clone(), dependent]).plan(),
            vec![Action::DropOwners {
                uid: "uid-dep".into(),
                owners: vec!["uid-owner".into()],
                confirm_gone: vec![],
            }]
        );
        assert_eq!(
            graph(vec![owner]).plan(),
            vec![Action::RemoveFinalizer {
                uid: "uid-owner".into(),
                finalizer: ORPHAN
            }]
        );
    }

    #[test]
    fn a_foreground_cycle_is_unblocked_rather_than_waited_on_forever() {
        // Upstream conformance: "should not be blocked by dependency circle": 1 owned by 3,
        // 2 by 1, 3 by 2, all blocking; 1 deleted in the foreground.
        let mut one = item("1");
        let two = owned_by("2", &[(&one, true)]);
        let three = owned_by("3", &[(&two, true)]);
        one.owners = vec![reference(&three, true)];
        let one = deleting(one, FOREGROUND);
        // 2 is deleted in the foreground (it has a dependent); 3 is owned by 2, not waiting yet.
        let plan = graph(vec![one.clone(), two.clone(), three.clone()]).plan();
        assert_eq!(
            plan,
            vec![Action::Delete {
                uid: "uid-2".into(),
                policy: Policy::Foreground,
                unblock_first: false,
                confirm_gone: vec![],
            }]
        );
        // Once 2 waits too, 3 must be deleted and, since its dependent 1 is itself waiting on
        // dependents, its reference to 2 made non-blocking first.
        let two = deleting(two, FOREGROUND);
        let plan = graph(vec![one, two, three]).plan();
        assert_eq!(
            plan,
            vec![Action::Delete {
                uid: "uid-3".into(),
                policy: Policy::Foreground,
                unblock_first: true,
                confirm_gone: vec![],
            }]
        );
    }

    #[test]
    fn a_dependent_with_its_own_orphan_finalizer_is_deleted_orphaning() {
        let owner = item("owner");
        let mut dependent = owned_by("dep", &[(&owner, false)]);
        dependent.finalizers.push(ORPHAN.into());
        let plan = graph(vec![dependent]).plan();
        assert!(matches!(
            plan.as_slice(),
            [Action::Delete {
                policy: Policy::Orphan,
                ..
            }]
        ));
    }

    #[test]
    fn group_of_splits_api_versions() {
        assert_eq!(group_of("apps/v1"), "apps");
        assert_eq!(group_of("v1"), "");
        assert_eq!(
            group_of("rbac.authorization.k8s.io/v1"),
            "rbac.authorization.k8s.io"
        );
    }
}
