//! What an optimization did, as issue-4 JSON.

use std::collections::BTreeMap;

use serde::Serialize;
use transfuse_ir::{Graph, MS_DOMAIN};

/// The fused op types counted in [`Report::fused`] (domain, op type).
pub const FUSED_OPS: &[(&str, &str)] = &[
    ("", "LayerNormalization"),
    (MS_DOMAIN, "SkipLayerNormalization"),
    (MS_DOMAIN, "Gelu"),
    (MS_DOMAIN, "FastGelu"),
    (MS_DOMAIN, "BiasGelu"),
    (MS_DOMAIN, "QuickGelu"),
    (MS_DOMAIN, "Attention"),
    (MS_DOMAIN, "MultiHeadAttention"),
    (MS_DOMAIN, "EmbedLayerNormalization"),
];

/// The e-graph part of a [`Report`].
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct EGraphReport {
    /// E-nodes at the end of the run.
    pub nodes: usize,
    /// E-classes at the end of the run.
    pub classes: usize,
    /// Iterations run.
    pub iterations: usize,
    /// Why the runner stopped (`Saturated`, `IterationLimit(n)`, `NodeLimit(n)`,
    /// `TimeLimit(s)`, or `NotRun` when no rule was enabled).
    pub stop_reason: String,
}

/// What [`crate::optimize`] did.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Report {
    /// The model (its graph name; callers replace it with a path).
    pub model: String,
    /// Count of each fused op type in the optimized graph (every type of [`FUSED_OPS`]).
    pub fused: BTreeMap<String, usize>,
    /// Nodes in the input graph.
    pub nodes_before: usize,
    /// Nodes in the optimized graph.
    pub nodes_after: usize,
    /// Time of the whole optimization (import, run, extraction, lowering), in ms.
    pub optimize_ms: f64,
    /// The e-graph run.
    pub egraph: EGraphReport,
    /// Each rule that ran and how many times it changed the e-graph.
    pub rules: BTreeMap<String, usize>,
}

/// Counts of [`FUSED_OPS`] in a graph.
pub fn fused_counts(graph: &Graph) -> BTreeMap<String, usize> {
    FUSED_OPS
        .iter()
        .map(|(domain, op)| {
            let n = graph
                .nodes
                .iter()
                .filter(|n| {
                    n.op_type == *op && (n.domain == *domain || (domain.is_empty() && n.is_onnx()))
                })
                .count();
            (op.to_string(), n)
        })
        .collect()
}
