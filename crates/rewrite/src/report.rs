//! What an optimization did, as JSON.

use std::collections::BTreeMap;

use serde::Serialize;
use transfuse_ir::Graph;

use crate::fusions::FUSIONS;

/// The fused op types counted in [`Report::fused`]: every `(domain, op type)` some fusion of
/// [`FUSIONS`] emits, once each, in registry order.
pub fn fused_op_types() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for pair in FUSIONS.iter().flat_map(|f| f.emits.iter().copied()) {
        if !out.contains(&pair) {
            out.push(pair);
        }
    }
    out
}

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
    /// Fused nodes this run created, per fused op type (every type of [`fused_op_types`]):
    /// the count in the output minus the count in the input, floored at 0, so fused ops the
    /// input already had are not counted.
    pub fused: BTreeMap<String, usize>,
    /// Nodes in the input graph.
    pub nodes_before: usize,
    /// Nodes in the optimized graph.
    pub nodes_after: usize,
    /// Node count per op type in the input graph (`domain.op` outside the ONNX domain).
    pub ops_before: BTreeMap<String, usize>,
    /// Node count per op type in the optimized graph (`domain.op` outside the ONNX domain).
    pub ops_after: BTreeMap<String, usize>,
    /// Time of the whole optimization (import, run, extraction, lowering), in ms.
    pub optimize_ms: f64,
    /// The e-graph run.
    pub egraph: EGraphReport,
    /// Each rule that ran and how many times it changed the e-graph.
    pub rules: BTreeMap<String, usize>,
    /// The inputs narrowed to int32 and the casts removed, with
    /// [`OptimizeOptions::int32_inputs`](crate::OptimizeOptions::int32_inputs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub int32_inputs: Option<crate::int32_inputs::Int32InputsReport>,
}

impl Report {
    /// Fills the node counts and [`Report::fused`] from the input and output graphs.
    pub(crate) fn count_ops(&mut self, before: &Graph, after: &Graph) {
        self.nodes_before = before.nodes.len();
        self.nodes_after = after.nodes.len();
        self.ops_before = before.op_histogram();
        self.ops_after = after.op_histogram();
        let (was, now) = (fused_counts(before), fused_counts(after));
        self.fused = now
            .into_iter()
            .map(|(op, n)| {
                let had = was.get(&op).copied().unwrap_or(0);
                (op, n.saturating_sub(had))
            })
            .collect();
    }
}

/// Counts of each of [`fused_op_types`] in a graph (all of them, zeros included).
pub fn fused_counts(graph: &Graph) -> BTreeMap<String, usize> {
    fused_op_types()
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
