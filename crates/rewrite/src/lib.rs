//! The transfuse fusion engine: ONNX graph -> egg e-graph -> rewrite rules -> DAG-aware
//! extraction -> ONNX graph.
//!
//! ```no_run
//! use transfuse_rewrite::{optimize, OptimizeOptions};
//! let model = transfuse_ir::Model::load("model.onnx")?;
//! let options = OptimizeOptions { fusions: "all,-attention".parse()?, ..Default::default() };
//! let (fused, report) = optimize(&model, &options)?;
//! fused.save("model.opt.onnx")?;
//! println!("{}", serde_json::to_string(&report)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How it works
//! - [`lang`]: the language. Every ONNX node is an [`Onnx::Op`] e-node whose data is op type,
//!   domain, output count and sorted attributes; inputs and constants are leaves (constants
//!   by [`TensorId`] into the [`TensorTable`]; tensor data never enters the e-graph);
//!   multi-output nodes are tuple classes read through [`Onnx::Proj`]; one [`Onnx::Root`]
//!   holds the graph outputs. Nodes with subgraphs are [`Onnx::Opaque`] and pass through.
//! - Import (`import.rs`, private): the model's main graph becomes an e-graph.
//! - The analysis ([`ClassData`]): per e-class element type, symbolic shape ([`SymDim`]:
//!   `batch`, `64`, `batch*sequence`), small constant values (shape vectors and scalars,
//!   folded through the shape and scale arithmetic exporters emit) and "every element equals
//!   c". Per-op inference lives in `infer/` (private): `shape.rs`, `slice.rs`, `fold.rs`,
//!   `uniform.rs`, with a table of tests per op family.
//! - [`fusions`]: the registry [`FUSIONS`]; each fusion is a file of named rules.
//! - Extraction (`extract/`, private): DAG-aware greedy extraction (shared subterms paid
//!   once) under the cost model of `extract/cost.rs`. New nodes of an op type only a disabled
//!   fusion emits are never extracted, nor [`INTERNAL_DOMAIN`] ops.
//! - Lowering (`lower/`, private): back to ONNX in three steps, naming, ordering and
//!   emission, keeping value names, original nodes with their metadata and every output
//!   they declared.
//! - Fixed shapes ([`FixedShapes`], `fixed_shapes.rs`): with `OptimizeOptions::fixed_shapes`,
//!   the named input dims are made static before import, and after lowering every node
//!   that then computes a constant (the shape arithmetic) becomes an initializer
//!   (`lower/fold.rs`, evaluated by the reference interpreter, small results only).
//! - [`opset`]: a default-domain opset above [`opset::MAX_KNOWN_OPSET`] is refused; an output
//!   with an op newer than the model's opset is raised to it only where every op means the
//!   same, else made without that op; created values get `value_info`.
//! - [`Report`]: op counts before and after, and the fused ops the run created.
//! - [`to_float16`] ([`float16`]): weights and activations to fp16 after fusion, the
//!   signature kept with one `Cast` per float boundary, ONNX Runtime's op block list in f32.
//! - [`int32_inputs`]: with `OptimizeOptions::int32_inputs`, the int64 graph inputs (ids,
//!   masks) become int32 after fusion, and the casts that become no-ops are removed.
//! - [`explain()`]: the sites left unfused in an optimized graph, each with the closest rule
//!   and the first failing condition, and found/fused counts per family.
//!
//! # How to add a fusion
//! The files it takes, and the test that catches a missing one:
//! 1. `src/fusions/<name>.rs`: `pub fn rules() -> Result<Vec<Rewrite>, RewriteError>` built
//!    from [`rule::rule`]`(name, &[patterns], applier)`. Patterns are s-expressions over op
//!    types (`"(MatMul ?a ?b)"`, `ms:` for com.microsoft, `internal:` for
//!    [`INTERNAL_DOMAIN`]); an op in a pattern matches any attributes. The applier receives
//!    the e-graph and a [`rule::Match`] (`m.get("?a")`, `m.root`), checks its conditions
//!    with the queries of [`rule`] (constant values, shapes, dtypes, the attributes of the
//!    e-nodes in a class via [`rule::ops`]) and returns the id of the replacement (built with
//!    [`rule::add_op`] and [`OpNode::new`]`(..).with_attr(..)`), or `None`. Shared pieces
//!    ([`rule::MS`], [`rule::LN_DEFAULT_EPSILON`], [`rule::const_tensor`],
//!    [`rule::onnx_nodes`]) are in [`rule`].
//! 2. One entry in [`FUSIONS`] (`src/fusions/mod.rs`, with the `mod` line): name, summary,
//!    the `(domain, op)` pairs it emits, the fusions its patterns start from (`needs`). The
//!    report, the bench's op columns and the command line read the registry; nothing else
//!    lists fused op types.
//! 3. `tests/<name>.rs`: one case where the fusion fires and one where it must not, and
//!    parity of the fused graph against the original (`transfuse-parity`).
//! 4. Docs: the fusion and each rule name in `docs/fusions.md`; an op it emits that the
//!    interpreter lacks needs a kernel in `crates/interp/src/ops/` (registered in its table)
//!    and a row in `docs/interpreter.md`. `tests/registry.rs` fails on each one missing.
//!
//! Canonical intermediate forms: a rule may add an e-node of [`INTERNAL_DOMAIN`] (for example
//! `internal:HeadSplit`) to the class of the structure it recognized; other rules match on
//! it; a final rule puts the real ONNX Runtime node in the same class. Internal ops are never
//! extracted, so a half-recognized structure costs nothing. If a rule needs facts (shape,
//! dtype) that inference lacks for an op, add them in `src/infer/` with a row in its tables.
//!
//! Conditions must read analysis facts, not the syntax of the match: an e-class can gain
//! members later, and each rule is re-run every iteration (so appliers must be idempotent:
//! adding the same e-node again is free, and [`TensorTable::intern`] gives created tensors
//! stable ids).

mod analysis;
mod error;
pub mod explain;
mod extract;
mod fixed_shapes;
pub mod float16;
mod fresh_names;
pub mod fusions;
mod import;
mod infer;
pub mod int32_inputs;
pub mod lang;
mod lower;
pub mod opset;
mod options;
mod report;
pub mod rule;
mod symbolic;
mod tensors;

use std::collections::BTreeMap;
use std::time::Instant;

use egg::{Runner, SimpleScheduler};
use transfuse_ir::Model;

pub use analysis::{ClassData, EGraph, OnnxAnalysis, ValueFacts};
pub use egg::Id;
pub use error::RewriteError;
pub use explain::{Explanation, FamilyCoverage, UnfusedSite, explain};
pub use fixed_shapes::{FixedShape, FixedShapes, FixedShapesError, ResolvedShapes};
pub use float16::{Float16Options, Float16Report, to_float16};
pub use fusions::{FUSIONS, Fusion};
pub use int32_inputs::{Int32InputsReport, narrow_int64_inputs};
pub use lang::{AttrVal, INTERNAL_DOMAIN, Onnx, OpNode, TensorId};
pub use lower::{MAX_FOLDED_ELEMENTS, MAX_FOLDED_INDEX_ELEMENTS};
pub use options::{AttentionOp, FusionSet, OptimizeOptions, RunnerLimits, Target};
pub use report::{EGraphReport, Report, fused_counts, fused_op_types};
pub use symbolic::{ConstValue, Scalar, SymDim};
pub use tensors::{TensorEntry, TensorOrigin, TensorTable};

/// Internals that the crate's integration tests inspect; not part of the API.
#[doc(hidden)]
pub mod testing {
    pub use crate::import::{Imported, import};
}

/// Optimizes `model` with the fusions and limits of `options`.
///
/// The input is not changed. Errors on a default-domain opset newer than transfuse knows
/// (see [`opset`]), on fixed shapes that do not fit the model ([`FixedShapesError`]), on a
/// graph that violates the IR's invariants or a bug in a rule; a fusion whose conditions do
/// not hold simply does not apply. The output is valid at the opset it
/// imports (raised to 17 for `LayerNormalization` only where every op means the same).
/// With `int32_inputs`, the int64 inputs are narrowed last ([`narrow_int64_inputs`]).
pub fn optimize(model: &Model, options: &OptimizeOptions) -> Result<(Model, Report), RewriteError> {
    let (out, mut report) = if options.fixed_shapes.is_empty() {
        opset::optimize(model, options, optimize_at_model_opset)?
    } else {
        let fixed = options.fixed_shapes.apply(model)?;
        opset::optimize(&fixed, options, optimize_at_model_opset)?
    };
    if !options.int32_inputs {
        return Ok((out, report));
    }
    let (narrowed, narrowing) = narrow_int64_inputs(&out)?;
    report.count_ops(&model.graph, &narrowed.graph);
    report.int32_inputs = Some(narrowing);
    Ok((narrowed, report))
}

/// [`optimize`] without the opset handling.
fn optimize_at_model_opset(
    model: &Model,
    options: &OptimizeOptions,
) -> Result<(Model, Report), RewriteError> {
    let start = Instant::now();
    let own_rules = fusions::rules_for(&options.fusions)?;
    let rules: Vec<&rule::Rewrite> = own_rules.iter().chain(options.extra_rules.iter()).collect();
    if rules.is_empty() && options.fixed_shapes.is_empty() {
        // No fusion selected (`--fusions none`): the model is returned exactly as loaded, not
        // re-extracted, so "none" is a faithful baseline.
        let mut report = Report {
            model: model.graph.name.clone(),
            optimize_ms: start.elapsed().as_secs_f64() * 1e3,
            egraph: EGraphReport {
                stop_reason: "NotRun".to_string(),
                ..EGraphReport::default()
            },
            ..Report::default()
        };
        report.count_ops(&model.graph, &model.graph);
        return Ok((model.clone(), report));
    }
    let limits = &options.limits;
    if model.graph.nodes.len() > limits.max_graph_nodes {
        return Err(RewriteError::GraphTooLarge {
            nodes: model.graph.nodes.len(),
            limit: limits.max_graph_nodes,
        });
    }
    let (egraph, imported) = import::import(model)?;

    let mut report = Report {
        model: model.graph.name.clone(),
        ..Report::default()
    };
    let (egraph, stop_reason, iterations) = {
        let runner = Runner::<Onnx, OnnxAnalysis>::default()
            .with_egraph(egraph)
            .with_node_limit(limits.node_limit)
            .with_iter_limit(limits.iter_limit)
            .with_time_limit(limits.time_limit)
            .with_scheduler(SimpleScheduler)
            .run(rules.iter().copied());
        let mut applied: BTreeMap<String, usize> =
            rules.iter().map(|r| (r.name.to_string(), 0)).collect();
        for it in &runner.iterations {
            for (name, n) in &it.applied {
                *applied.entry(name.to_string()).or_insert(0) += n;
            }
        }
        report.rules = applied;
        let reason = runner
            .stop_reason
            .as_ref()
            .map_or("Unknown".to_string(), |r| format!("{r:?}"));
        let iterations = runner.iterations.len();
        (runner.egraph, reason, iterations)
    };
    report.egraph = EGraphReport {
        nodes: egraph.total_number_of_nodes(),
        classes: egraph.number_of_classes(),
        iterations,
        stop_reason,
    };

    // Original nodes by canonical e-node, computed once: the cost model prices them and
    // lowering writes them back as themselves.
    let original = lower::canonical_originals(&imported, &egraph);
    let costs = extract::CostModel {
        original: &original,
        allowed: fusions::allowed_new_ops(&options.fusions)
            .into_iter()
            .filter(|op| !options.attention_op.excluded().contains(op))
            .collect(),
        fused: fusions::fused_ops(),
    };
    let extraction = extract::extract(&egraph, egraph.find(imported.root), |n| costs.cost(n))?;
    let (mut out, facts) = lower::lower(model, &imported, &egraph, &extraction, &original)?;
    if !options.fixed_shapes.is_empty() {
        lower::fold_constants(&mut out, &facts)?;
    }
    report.count_ops(&model.graph, &out.graph);
    report.optimize_ms = start.elapsed().as_secs_f64() * 1e3;
    Ok((out, report))
}
