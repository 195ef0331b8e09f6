//! The scheduling framework: per pod, run the filter plugins over nodes until enough feasible
//! ones are found, score those, and pick the best; or explain, kube-scheduler's way, why no
//! node fits.

use std::{
    collections::BTreeMap,
    fmt,
    sync::atomic::{AtomicUsize, Ordering},
};

use crate::cache::{Cache, NodeInfo, PodInfo};

/// The highest score a plugin gives a node.
pub const MAX_NODE_SCORE: i64 = 100;

/// kube-scheduler's floor: below this many nodes every node is evaluated.
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// kube-scheduler's floor for the adaptive percentage of nodes to score.
const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: usize = 5;

/// Why a node cannot take a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Evicting lower-priority pods might make room.
    Unschedulable,
    /// Nothing preemption could do helps (taints, selectors, cordons).
    UnschedulableAndUnresolvable,
}

/// A filter's verdict against one node, with kube-scheduler's reason strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: Code,
    pub reasons: Vec<String>,
}

impl Rejection {
    /// A rejection preemption might resolve.
    pub fn unschedulable(reason: impl Into<String>) -> Self {
        Self {
            code: Code::Unschedulable,
            reasons: vec![reason.into()],
        }
    }

    /// A rejection preemption cannot resolve.
    pub fn unresolvable(reason: impl Into<String>) -> Self {
        Self {
            code: Code::UnschedulableAndUnresolvable,
            reasons: vec![reason.into()],
        }
    }
}

/// A filter plugin. `prepare` runs once per pod (kube's PreFilter) and returns the per-node
/// check, or `None` when the plugin has nothing to check for this pod (kube's Skip).
pub trait FilterPlugin: Send + Sync {
    fn name(&self) -> &'static str;
    fn prepare<'a>(&self, pod: &'a PodInfo, cache: &'a Cache) -> Option<Box<dyn NodeFilter + 'a>>;
}

/// The per-node half of a [`FilterPlugin`].
pub trait NodeFilter {
    fn filter(&self, node: &NodeInfo) -> Result<(), Rejection>;
}

/// A score plugin; scores are `0..=MAX_NODE_SCORE` after `normalize`.
pub trait ScorePlugin: Send + Sync {
    fn name(&self) -> &'static str;
    fn prepare<'a>(&self, pod: &'a PodInfo, cache: &'a Cache) -> Option<Box<dyn NodeScorer + 'a>>;
}

/// The per-node half of a [`ScorePlugin`].
pub trait NodeScorer {
    fn score(&self, node: &NodeInfo) -> i64;
    /// Rescales raw scores of all feasible nodes into `0..=MAX_NODE_SCORE`.
    fn normalize(&self, _scores: &mut [i64]) {}
}

/// Scales scores so the highest becomes [`MAX_NODE_SCORE`]; `reverse` makes the lowest raw
/// score the best (kube's `DefaultNormalizeScore`).
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|score| *score = MAX_NODE_SCORE);
        }
        return;
    }
    for score in scores.iter_mut() {
        *score = MAX_NODE_SCORE * *score / max;
        if reverse {
            *score = MAX_NODE_SCORE - *score;
        }
    }
}

/// The failure of one scheduling attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleError {
    /// The cluster has no nodes at all.
    NoNodesAvailable,
    /// Nodes exist but none fits.
    Unfit(FitError),
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoNodesAvailable => f.write_str("no nodes available to schedule pods"),
            Self::Unfit(fit_error) => f.write_str(&fit_error.message()),
        }
    }
}

impl std::error::Error for ScheduleError {}

/// Why no node fits: each rejected node's verdict, plus what preemption found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    pub num_all_nodes: usize,
    /// Node name and its rejection, for every node evaluated.
    pub rejections: Vec<(String, Rejection)>,
    /// The PostFilter (preemption) message, already prefixed with `preemption: `.
    pub post_filter_message: Option<String>,
}

impl FitError {
    /// kube-scheduler's `FitError.Error()`:
    /// `0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, 2 Insufficient cpu.`
    /// followed by the preemption message when there is one.
    pub fn message(&self) -> String {
        let mut message = format!("0/{} nodes are available:", self.num_all_nodes);
        let histogram = reason_histogram(
            self.rejections
                .iter()
                .flat_map(|(_, rejection)| rejection.reasons.iter().map(String::as_str)),
        );
        if !histogram.is_empty() {
            message.push(' ');
            message.push_str(&histogram);
            message.push('.');
        }
        if let Some(post_filter) = &self.post_filter_message {
            message.push(' ');
            message.push_str(post_filter);
        }
        message
    }
}

/// Counts reasons and joins `"{count} {reason}"` sorted as strings, as Go's `sort.Strings`
/// does (so `"10 x"` sorts before `"2 y"`).
pub fn reason_histogram<'a>(reasons: impl Iterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for reason in reasons {
        *counts.entry(reason).or_default() += 1;
    }
    let mut entries: Vec<String> = counts
        .into_iter()
        .map(|(reason, count)| format!("{count} {reason}"))
        .collect();
    entries.sort();
    entries.join(", ")
}

/// Where a pod goes, and how much work it took to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleResult {
    pub node_name: String,
    pub evaluated_nodes: usize,
    pub feasible_nodes: usize,
}

/// An ordered set of filters and weighted scores: one scheduling profile.
pub struct Framework {
    filters: Vec<Box<dyn FilterPlugin>>,
    scores: Vec<(Box<dyn ScorePlugin>, i64)>,
    /// `0` means adaptive, as kube-scheduler's default.
    percentage_of_nodes_to_score: usize,
    /// Where the next search starts, so successive pods look at different nodes first.
    next_start_index: AtomicUsize,
}

impl fmt::Debug for Framework {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Framework")
            .field(
                "filters",
                &self.filters.iter().map(|p| p.name()).collect::<Vec<_>>(),
            )
            .field(
                "scores",
                &self
                    .scores
                    .iter()
                    .map(|(p, weight)| (p.name(), *weight))
                    .collect::<Vec<_>>(),
            )
            .field(
                "percentage_of_nodes_to_score",
                &self.percentage_of_nodes_to_score,
            )
            .finish()
    }
}

impl Framework {
    /// A framework with the given plugins, in the order they run.
    pub fn new(
        filters: Vec<Box<dyn FilterPlugin>>,
        scores: Vec<(Box<dyn ScorePlugin>, i64)>,
        percentage_of_nodes_to_score: usize,
    ) -> Self {
        Self {
            filters,
            scores,
            percentage_of_nodes_to_score,
            next_start_index: AtomicUsize::new(0),
        }
    }

    /// How many feasible nodes to look for before scoring (kube's `numFeasibleNodesToFind`).
    pub fn num_feasible_nodes_to_find(&self, num_all_nodes: usize) -> usize {
        if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND || self.percentage_of_nodes_to_score >= 100 {
            return num_all_nodes;
        }
        let percentage = if self.percentage_of_nodes_to_score == 0 {
            50usize
                .saturating_sub(num_all_nodes / 125)
                .max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
        } else {
            self.percentage_of_nodes_to_score
        };
        (num_all_nodes * percentage / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
    }

    /// Runs every filter against `node` and returns the first rejection.
    pub fn run_filters(
        &self,
        pod: &PodInfo,
        cache: &Cache,
        node: &NodeInfo,
    ) -> Result<(), Rejection> {
        let prepared: Vec<_> = self
            .filters
            .iter()
            .filter_map(|plugin| plugin.prepare(pod, cache))
            .collect();
        prepared.iter().try_for_each(|filter| filter.filter(node))
    }

    /// Picks a node for `pod`. A miss returns every evaluated node's rejection; since
    /// sampling stops only once enough nodes *fit*, a miss has always evaluated every node.
    pub fn schedule(&self, pod: &PodInfo, cache: &Cache) -> Result<ScheduleResult, ScheduleError> {
        let num_all_nodes = cache.node_count();
        if num_all_nodes == 0 {
            return Err(ScheduleError::NoNodesAvailable);
        }
        let filters: Vec<_> = self
            .filters
            .iter()
            .filter_map(|plugin| plugin.prepare(pod, cache))
            .collect();
        let wanted = self.num_feasible_nodes_to_find(num_all_nodes);
        let nodes = cache.nodes();
        let start = self.next_start_index.load(Ordering::Relaxed) % nodes.len();
        let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(wanted.min(nodes.len()));
        let mut rejections = Vec::new();
        let mut visited = 0;
        for offset in 0..nodes.len() {
            let node = &nodes[(start + offset) % nodes.len()];
            visited = offset + 1;
            if node.node.is_none() {
                continue;
            }
            match filters.iter().try_for_each(|filter| filter.filter(node)) {
                Ok(()) => {
                    feasible.push(node);
                    if feasible.len() >= wanted {
                        break;
                    }
                }
                Err(rejection) => rejections.push((node.name.clone(), rejection)),
            }
        }
        self.next_start_index
            .store((start + visited) % nodes.len(), Ordering::Relaxed);
        let evaluated_nodes = feasible.len() + rejections.len();

        let Some(first) = feasible.first() else {
            return Err(ScheduleError::Unfit(FitError {
                num_all_nodes,
                rejections,
                post_filter_message: None,
            }));
        };
        let node_name = if feasible.len() == 1 {
            first.name.clone()
        } else {
            self.best_node(pod, cache, &feasible)
        };
        Ok(ScheduleResult {
            node_name,
            evaluated_nodes,
            feasible_nodes: feasible.len(),
        })
    }

    fn best_node(&self, pod: &PodInfo, cache: &Cache, feasible: &[&NodeInfo]) -> String {
        let mut totals = vec![0i64; feasible.len()];
        let mut scores = vec![0i64; feasible.len()];
        for (plugin, weight) in &self.scores {
            let Some(scorer) = plugin.prepare(pod, cache) else {
                continue;
            };
            for (score, node) in scores.iter_mut().zip(feasible) {
                *score = scorer.score(node);
            }
            scorer.normalize(&mut scores);
            for (total, score) in totals.iter_mut().zip(&scores) {
                *total += score * weight;
            }
        }
        // The first best wins; the rotating start index already varies which node is first.
        let mut best = 0;
        for (index, total) in totals.iter().enumerate() {
            if *total > totals[best] {
                best = index;
            }
        }
        feasible[best].name.clone()
    }

    /// The node scores for `pod` over `nodes` (weighted and summed), for tests and debugging.
    pub fn score_nodes(&self, pod: &PodInfo, cache: &Cache, nodes: &[&NodeInfo]) -> Vec<i64> {
        let mut totals = vec![0i64; nodes.len()];
        for (plugin, weight) in &self.scores {
            let Some(scorer) = plugin.prepare(pod, cache) else {
                continue;
            };
            let mut scores: Vec<i64> = nodes.iter().map(|node| scorer.score(node)).collect();
            scorer.normalize(&mut scores);
            for (total, score) in totals.iter_mut().zip(scores) {
                *total += score * weight;
            }
        }
        totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection(code: Code, reasons: &[&str]) -> Rejection {
        Rejection {
            code,
            reasons: reasons.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    #[test]
    fn fit_error_matches_kube_scheduler_wording() {
        let fit_error = FitError {
            num_all_nodes: 3,
            rejections: vec![
                (
                    "a".into(),
                    rejection(
                        Code::UnschedulableAndUnresolvable,
                        &["node(s) had untolerated taint {machine-check-exception: memory}"],
                    ),
                ),
                ("b".into(), rejection(Code::Unschedulable, &["Insufficient cpu"])),
                ("c".into(), rejection(Code::Unschedulable, &["Insufficient cpu"])),
            ],
            post_filter_message: Some(
                "preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod.".into(),
            ),
        };
        assert_eq!(
            fit_error.message(),
            "0/3 nodes are available: 1 node(s) had untolerated taint {machine-check-exception: memory}, 2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
        );
    }

    #[test]
    fn histogram_sorts_as_go_strings_and_counts_every_reason() {
        let reasons = ["Insufficient cpu"; 10].into_iter().chain([
            "Insufficient memory",
            "Insufficient memory",
            "Insufficient cpu",
        ]);
        assert_eq!(
            reason_histogram(reasons),
            "11 Insufficient cpu, 2 Insufficient memory"
        );
        let reasons = std::iter::repeat_n("b", 10).chain(std::iter::repeat_n("a", 2));
        assert_eq!(reason_histogram(reasons), "10 b, 2 a");
    }

    #[test]
    fn feasible_nodes_to_find_follows_the_adaptive_percentage() {
        let framework = Framework::new(Vec::new(), Vec::new(), 0);
        assert_eq!(framework.num_feasible_nodes_to_find(50), 50);
        assert_eq!(framework.num_feasible_nodes_to_find(100), 100);
        assert_eq!(framework.num_feasible_nodes_to_find(1000), 420);
        assert_eq!(framework.num_feasible_nodes_to_find(5000), 500);
        assert_eq!(framework.num_feasible_nodes_to_find(15000), 750);
        let everything = Framework::new(Vec::new(), Vec::new(), 100);
        assert_eq!(everything.num_feasible_nodes_to_find(5000), 5000);
    }

    #[test]
    fn normalize_scales_to_max_and_reverses() {
        let mut scores = vec![0, 5, 10];
        default_normalize(&mut scores, false);
        assert_eq!(scores, vec![0, 50, 100]);
        let mut scores = vec![0, 5, 10];
        default_normalize(&mut scores, true);
        assert_eq!(scores, vec![100, 50, 0]);
        let mut zeros = vec![0, 0];
        default_normalize(&mut zeros, true);
        assert_eq!(zeros, vec![100, 100]);
    }
}
