//! Why a block did not fuse: every site a fusion looks for (`Softmax` for attention,
//! `ReduceMean` for the norms, `Erf`/`Tanh`/`Sigmoid` for the GELUs) that is still in an
//! optimized graph, with the closest rule and the first condition that does not hold, and
//! per family how many blocks were found and how many fused.
//!
//! Wiring `optimize --explain`: call [`explain`] on the optimized model and print each
//! [`UnfusedSite`] with its `Display` (`attention at /layer.0/Softmax: ...`) and
//! [`Explanation::summary`] (`attention 12/12, norms 25/25, gelu 12/12`); the whole
//! [`Explanation`] serializes to JSON for the report's `"unfused"` list.
//!
//! Attention sites are diagnosed on an e-graph of the optimized model on which the attention
//! rules ran again (the same analysis and lifting rules as [`crate::optimize`]): the first
//! missing stage of `Scores -> Probs -> fused op` and the condition of it that fails (an
//! unknown shape, a query that is not a head split, a bias not proven to broadcast). Norm
//! and GELU sites are diagnosed on the ONNX graph (nodes, declared shapes), their conditions
//! checked in the order the fusions check them; where every structural one holds, the
//! reason names the rule's remaining proof obligations.

use std::collections::HashMap;
use std::fmt;

use egg::{Id, Runner, SimpleScheduler};
use serde::Serialize;
use transfuse_ir::{Dim, Graph, Model, Node};

use crate::analysis::{EGraph, OnnxAnalysis};
use crate::lang::Onnx;
use crate::options::{FusionSet, RunnerLimits};

/// One site left unfused.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct UnfusedSite {
    /// The family (`attention`, `norms`, `gelu`).
    pub family: &'static str,
    /// The closest rule (`attention`, `layernorm-core`, `rmsnorm`, `gelu`, `fastgelu`,
    /// `quickgelu`).
    pub rule: &'static str,
    /// The site node's name (its first output's name when the node has none).
    pub node: String,
    /// The site's op type.
    pub op: String,
    /// The first condition that failed.
    pub reason: String,
}

impl fmt::Display for UnfusedSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}: {}", self.rule, self.node, self.reason)
    }
}

/// Found and fused blocks of one family.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FamilyCoverage {
    /// The family (`attention`, `norms`, `gelu`).
    pub family: &'static str,
    /// Blocks found: fused ops of the family plus the family's unfused sites.
    pub found: usize,
    /// Fused ops of the family in the optimized graph.
    pub fused: usize,
}

/// What [`explain`] found.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Explanation {
    /// Every site left unfused, in graph order.
    pub unfused: Vec<UnfusedSite>,
    /// Per family, in the order attention, norms, gelu.
    pub coverage: Vec<FamilyCoverage>,
}

impl Explanation {
    /// Restates the sites whose closest fusion was not run (`--fusions` left it out): their
    /// reason is then that, not a condition the rules never checked. A site's fusion is its
    /// rule's name up to the first `-` (`layernorm-core` belongs to `layernorm`).
    pub fn with_fusions(mut self, enabled: &FusionSet) -> Explanation {
        for site in &mut self.unfused {
            let fusion = site.rule.split('-').next().unwrap_or(site.rule);
            if crate::fusions::fusion(fusion).is_some() && !enabled.contains(fusion) {
                site.reason = format!("the `{fusion}` fusion was not run (--fusions)");
            }
        }
        self
    }

    /// `attention 12/12, norms 25/25, gelu 12/12` (fused/found).
    pub fn summary(&self) -> String {
        self.coverage
            .iter()
            .map(|c| format!("{} {}/{}", c.family, c.fused, c.found))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The fusions of each family; the op types counted as fused blocks are those the fusions
/// emit (their registry entries), plus ONNX Runtime's `SimplifiedLayerNormalization`, which
/// an input may already hold and which no fusion emits.
const FAMILIES: &[(&str, &[&str])] = &[
    ("attention", &["attention"]),
    (
        "norms",
        &[
            "layernorm",
            "skiplayernorm",
            "rmsnorm",
            "skiprmsnorm",
            "embedlayernorm",
        ],
    ),
    ("gelu", &["gelu", "fastgelu", "quickgelu", "biasgelu"]),
];

/// True when `op` is a fused op of the fusions named in `fusions`.
fn is_fused_op(fusions: &[&str], node: &Node) -> bool {
    let emitted = fusions
        .iter()
        .filter_map(|name| crate::fusions::fusion(name))
        .flat_map(|f| f.emits.iter())
        .any(|&(domain, op)| {
            op == node.op_type
                && (domain == node.domain
                    || (crate::lang::is_default_domain(domain)
                        && crate::lang::is_default_domain(&node.domain)))
        });
    emitted
        || (fusions.contains(&"rmsnorm")
            && node.op_type == "SimplifiedLayerNormalization"
            && node.is_onnx())
}

/// Names the unfused sites of `optimized` (the output of [`crate::optimize`]) and counts
/// found and fused blocks per family. Never fails: a site it cannot diagnose further gets
/// the rule's remaining obligations as its reason.
pub fn explain(optimized: &Model) -> Explanation {
    let graph = &optimized.graph;
    let facts = GraphFacts::new(graph);
    // The analysis e-graph gives attention sites their stage-by-stage diagnosis and norm
    // sites the shapes the graph does not declare.
    let needs_analysis = graph
        .nodes
        .iter()
        .any(|n| matches!(n.op_type.as_str(), "Softmax" | "ReduceMean"));
    let attention = if needs_analysis {
        attention_egraph(optimized)
    } else {
        None
    };
    let unfused: Vec<UnfusedSite> = graph
        .nodes
        .iter()
        .filter(|n| n.is_onnx())
        .filter_map(|n| {
            let mut found = diagnose(&facts, n)?;
            let Some((eg, names)) = &attention else {
                return Some(found);
            };
            let class = |v: Option<&String>| v.and_then(|v| names.get(v.as_str())).copied();
            match n.op_type.as_str() {
                "Softmax" => {
                    if let (Some(s), Some(x)) = (class(n.outputs.first()), class(n.inputs.first()))
                    {
                        found.reason = crate::fusions::diagnose_attention(eg, s, x);
                    }
                }
                "ReduceMean" => {
                    let last_known = class(n.inputs.first())
                        .and_then(|x| crate::rule::last_dim(eg, x))
                        .is_some_and(|d| d.as_known().is_some());
                    if last_known {
                        (found.rule, found.reason) = mean_site(&facts, n, true);
                    }
                }
                _ => {}
            }
            Some(found)
        })
        .collect();
    let coverage = FAMILIES
        .iter()
        .map(|(family, fusions)| {
            let fused = graph
                .nodes
                .iter()
                .filter(|n| is_fused_op(fusions, n))
                .count();
            let left = unfused.iter().filter(|s| s.family == *family).count();
            FamilyCoverage {
                family,
                found: fused + left,
                fused,
            }
        })
        .collect();
    Explanation { unfused, coverage }
}

/// `optimized` as an e-graph on which the attention rules ran, with the class of each value
/// name. `None` when the model cannot be imported or is over the node limit (the sites then
/// keep their graph-level reasons).
fn attention_egraph(optimized: &Model) -> Option<(EGraph, HashMap<String, Id>)> {
    let limits = RunnerLimits::default();
    if optimized.graph.nodes.len() > limits.max_graph_nodes {
        return None;
    }
    let set: FusionSet = "attention".parse().ok()?;
    let rules = crate::fusions::rules_for(&set).ok()?;
    let (egraph, imported) = crate::import::import(optimized).ok()?;
    let runner = Runner::<Onnx, OnnxAnalysis>::default()
        .with_egraph(egraph)
        .with_node_limit(limits.node_limit)
        .with_iter_limit(limits.iter_limit)
        .with_time_limit(limits.time_limit)
        .with_scheduler(SimpleScheduler)
        .run(&rules);
    let eg = runner.egraph;
    let names = imported
        .names
        .into_iter()
        .map(|(n, id)| (n, eg.find(id)))
        .collect();
    Some((eg, names))
}

/// Producers, consumers and declared shapes of a graph's values.
struct GraphFacts<'g> {
    graph: &'g Graph,
    producer: HashMap<&'g str, &'g Node>,
    consumers: HashMap<&'g str, Vec<&'g Node>>,
    shapes: HashMap<&'g str, &'g [Dim]>,
}

impl<'g> GraphFacts<'g> {
    fn new(graph: &'g Graph) -> Self {
        let mut producer = HashMap::new();
        let mut consumers: HashMap<&str, Vec<&Node>> = HashMap::new();
        for n in &graph.nodes {
            for o in &n.outputs {
                producer.insert(o.as_str(), n);
            }
            for i in &n.inputs {
                consumers.entry(i.as_str()).or_default().push(n);
            }
        }
        let shapes = graph
            .inputs
            .iter()
            .chain(&graph.outputs)
            .chain(&graph.value_info)
            .filter_map(|v| Some((v.name.as_str(), v.shape()?)))
            .collect();
        GraphFacts {
            graph,
            producer,
            consumers,
            shapes,
        }
    }

    fn rank(&self, value: &str) -> Option<usize> {
        self.shapes.get(value).map(|s| s.len())
    }

    fn producer_op(&self, value: &str) -> Option<&'g Node> {
        self.producer.get(value).copied()
    }

    /// The producer of `value`, looking through `Cast`s (T5 casts to f32 before its norm).
    fn producer_op_through_casts(&self, value: &str) -> Option<&'g Node> {
        let mut node = self.producer_op(value)?;
        for _ in 0..4 {
            if node.op_type != "Cast" {
                break;
            }
            node = self.producer_op(node.inputs.first()?)?;
        }
        Some(node)
    }

    /// The number held by a one-element constant (an initializer or a `Constant` node).
    fn scalar(&self, value: &str) -> Option<f64> {
        let one_element = |t: &transfuse_ir::Tensor| match t.numel() {
            Ok(1) => t.to_f64_vec().ok()?.first().copied(),
            _ => None,
        };
        if let Some(t) = self.graph.initializers.get(value) {
            return one_element(t);
        }
        let node = self.producer_op(value)?;
        (node.op_type == "Constant")
            .then(|| node.attr_tensor("value"))
            .flatten()
            .and_then(one_element)
    }
}

fn site(
    family: &'static str,
    rule: &'static str,
    n: &Node,
    reason: impl Into<String>,
) -> UnfusedSite {
    let node = if n.name.is_empty() {
        n.outputs.first().cloned().unwrap_or_default()
    } else {
        n.name.clone()
    };
    UnfusedSite {
        family,
        rule,
        node,
        op: n.op_type.clone(),
        reason: reason.into(),
    }
}

fn diagnose(facts: &GraphFacts<'_>, n: &Node) -> Option<UnfusedSite> {
    match n.op_type.as_str() {
        "Softmax" => Some(site("attention", "attention", n, softmax_reason(facts, n))),
        "ReduceMean" => {
            let (rule, reason) = mean_site(facts, n, false);
            Some(site("norms", rule, n, reason))
        }
        "Erf" => Some(site(
            "gelu",
            "gelu",
            n,
            "erf is not inside x * 0.5 * (1 + erf(x / sqrt(2))) with constant factors",
        )),
        "Tanh" => Some(site(
            "gelu",
            "fastgelu",
            n,
            "tanh is not inside 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))",
        )),
        "Sigmoid" => Some(site(
            "gelu",
            "quickgelu",
            n,
            "sigmoid is not inside x * sigmoid(alpha * x) with a constant alpha (SiLU and gates are not GELUs)",
        )),
        _ => None,
    }
}

/// The additive terms of `value` through up to `depth` nested `Add`s.
fn additive_terms<'g>(
    facts: &GraphFacts<'g>,
    value: &'g str,
    depth: usize,
    out: &mut Vec<&'g str>,
) {
    match facts.producer_op(value) {
        Some(p) if p.op_type == "Add" && depth > 0 && p.inputs.len() == 2 => {
            for i in &p.inputs {
                additive_terms(facts, i, depth - 1, out);
            }
        }
        _ => out.push(value),
    }
}

/// True when `value` is `Q·Kᵀ`, possibly scaled by a `Mul` or `Div`.
fn is_scores(facts: &GraphFacts<'_>, value: &str) -> bool {
    match facts.producer_op(value) {
        Some(p) if p.op_type == "MatMul" => true,
        Some(p) if p.op_type == "Mul" || p.op_type == "Div" => p
            .inputs
            .iter()
            .any(|i| facts.producer_op(i).is_some_and(|q| q.op_type == "MatMul")),
        _ => false,
    }
}

fn softmax_reason(facts: &GraphFacts<'_>, n: &Node) -> String {
    let Some(input) = n.inputs.first() else {
        return "softmax has no input".to_string();
    };
    let rank = facts.rank(input);
    let axis = n.attr_int("axis").unwrap_or(-1);
    let last = axis == -1 || rank.is_some_and(|r| i64::try_from(r).ok() == Some(axis + 1));
    if !last {
        return format!("softmax is over axis {axis}, not the last axis of rank-4 scores");
    }
    if let Some(r) = rank.filter(|&r| r != 4) {
        return format!("scores have rank {r}, not [B, N, S, T]");
    }
    let mut terms = Vec::new();
    additive_terms(facts, input, 3, &mut terms);
    let scores = terms.iter().filter(|t| is_scores(facts, t)).count();
    if scores == 0 {
        let selected = facts
            .producer_op(input)
            .is_some_and(|p| p.op_type == "Where");
        return if selected {
            "scores are selected by a Where whose fill is not -inf or float32's lowest value"
                .to_string()
        } else {
            "no Q·Kᵀ MatMul (optionally scaled by a scalar) feeds the softmax".to_string()
        };
    }
    if terms.len() > 3 {
        return format!(
            "scores have {} additive inputs; at most two (a bias and a mask) are combined",
            terms.len() - 1
        );
    }
    let feeds_context = facts
        .consumers
        .get(n.outputs.first().map_or("", String::as_str))
        .is_some_and(|c| c.iter().any(|m| m.op_type == "MatMul"));
    if !feeds_context {
        return "the probabilities do not feed a MatMul with V".to_string();
    }
    "not proven: Q, K and V head splits of one [B, S, H] hidden size with N·d = H, a single \
     scalar scale, and an additive input that is a float bias broadcasting to [B|1, N|1, S, T] \
     (a rotary or per-head scaled query or key is not a head split)"
        .to_string()
}

/// The closest norm rule for a `ReduceMean` site and the first condition that fails.
/// `last_dim_known`: the analysis proved the reduced axis's length (the graph may not
/// declare it).
fn mean_site(facts: &GraphFacts<'_>, n: &Node, last_dim_known: bool) -> (&'static str, String) {
    let Some(input) = n.inputs.first() else {
        return ("layernorm-core", "mean has no input".to_string());
    };
    if is_square(facts, input) {
        return ("rmsnorm", rms_reason(facts, n, input, last_dim_known));
    }
    (
        "layernorm-core",
        mean_reason(facts, n, input, last_dim_known),
    )
}

/// True when `value` is `x * x` or `Pow(x, 2)` (the mean of squares of an RMS norm).
fn is_square(facts: &GraphFacts<'_>, value: &str) -> bool {
    facts
        .producer_op(value)
        .is_some_and(|p| match p.op_type.as_str() {
            "Mul" => p.inputs.len() == 2 && p.inputs[0] == p.inputs[1],
            "Pow" => p
                .inputs
                .get(1)
                .is_some_and(|e| facts.scalar(e) == Some(2.0)),
            _ => false,
        })
}

/// Why an RMS norm (`mean(x²)` over the last axis) is still there.
fn rms_reason(facts: &GraphFacts<'_>, n: &Node, input: &str, last_dim_known: bool) -> String {
    let structural = mean_reason(facts, n, input, last_dim_known);
    if !structural.starts_with("not a complete norm") {
        return structural;
    }
    // A standalone RMS norm is emitted as ONNX's RMSNormalization only when the graph can be
    // raised to opset 23 (`opset.rs`); ONNX Runtime's SimplifiedLayerNormalization sits in
    // the default ONNX domain, which the ONNX checker rejects, and is never emitted.
    let after_add = facts
        .producer_op(input)
        .and_then(|square| square.inputs.first())
        .and_then(|x| facts.producer_op_through_casts(x))
        .is_some_and(|p| p.op_type == "Add");
    if after_add {
        "RMS norm of a residual sum that skiprmsnorm did not fuse: x / sqrt(mean(x²) + eps) * g \
         with a constant epsilon and a scale g of the last dim's length, the sum of two \
         same-shape float tensors"
            .to_string()
    } else {
        "an RMS norm without a residual Add before it needs ONNX's RMSNormalization, which \
         exists from opset 23 on, and this graph cannot be raised to opset 23 (an op whose \
         meaning changed since its opset, or a subgraph); ONNX Runtime's \
         SimplifiedLayerNormalization is not emitted: it sits in the default ONNX domain, \
         which the ONNX checker rejects"
            .to_string()
    }
}

fn mean_reason(facts: &GraphFacts<'_>, n: &Node, input: &str, last_dim_known: bool) -> String {
    let rank = facts.rank(input);
    let axes = n.attr_ints("axes").map(<[i64]>::to_vec);
    let last_only = match (&axes, rank) {
        (Some(a), _) if a.as_slice() == [-1] => Some(true),
        (Some(a), Some(r)) => {
            Some(a.len() == 1 && i64::try_from(r).ok() == a.first().map(|x| x + 1))
        }
        (Some(_), None) => None,
        // Axes as an input (opset 18): decided by the rule's analysis, not here.
        (None, _) => None,
    };
    if last_only == Some(false) {
        return "mean is not over the last axis only".to_string();
    }
    if n.attr_int("keepdims") == Some(0) {
        return "mean drops the reduced axis (keepdims = 0)".to_string();
    }
    let last_dim = facts.shapes.get(input).and_then(|s| s.last());
    if !last_dim_known && !matches!(last_dim, Some(Dim::Known(_))) {
        return "last dim of x unknown".to_string();
    }
    "not a complete norm: x - mean(x), a variance of it (or mean(x²) for RMS) plus a \
     constant epsilon, its square root, and a constant scale of the last dim's length"
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::FAMILIES;

    /// Every fusion that emits an op counts toward exactly one family's blocks.
    #[test]
    fn every_emitting_fusion_has_one_family() {
        for f in crate::FUSIONS.iter().filter(|f| !f.emits.is_empty()) {
            let families = FAMILIES
                .iter()
                .filter(|(_, fusions)| fusions.contains(&f.name))
                .count();
            assert_eq!(families, 1, "fusion {} is in {families} families", f.name);
        }
    }
}
