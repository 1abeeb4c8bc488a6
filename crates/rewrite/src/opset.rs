//! Opsets around [`optimize`](crate::optimize): the output must be valid at the opset it
//! imports, and a model newer than transfuse knows is refused.
//!
//! - **Newer than known.** A default-domain opset above [`MAX_KNOWN_OPSET`] is refused with
//!   [`RewriteError::UnsupportedOpset`]: the rules read op semantics as ONNX defines them up to
//!   that version, and a later definition may mean something else. (Passing such a model
//!   through untouched would write an "optimized" file that is not, and a caller could not
//!   tell without comparing bytes.)
//! - **Ops newer than the model.** Fusions may emit default-domain ops that only exist from
//!   some opset on ([`NEWER_OPS`]: `LayerNormalization`, opset 17). When the output has more
//!   of them than the input and the model's opset is older, the model's default-domain opset
//!   is raised to that version if every op of the model means the same there
//!   ([`can_raise`]); otherwise the model is optimized again without the fusion that emits
//!   the op, so its nodes stay decomposed (the com.microsoft fusions built on them, such as
//!   `SkipLayerNormalization`, still apply).
//! - **Value types.** Values the fusions create get `value_info` with their element type and
//!   shape where the analysis knows them, so ONNX shape inference and viewers see them.

use std::collections::HashSet;

use transfuse_ir::{Dim, Model, ValueInfo, ValueType};

use crate::error::RewriteError;
use crate::options::{FusionSet, OptimizeOptions};
use crate::report::Report;
use crate::symbolic::SymDim;

/// The newest default-domain (`ai.onnx`) opset transfuse knows: ONNX 1.18's. The models
/// and exporters it targets use 14 to 18.
pub const MAX_KNOWN_OPSET: i64 = 23;

/// Default-domain ops that fusions emit and that exist only from an opset on, with the
/// fusion that emits them: `(op type, first opset, fusion)`.
pub const NEWER_OPS: &[(&str, i64, &str)] = &[
    ("LayerNormalization", 17, "layernorm"),
    ("RMSNormalization", 23, "rmsnorm"),
];

/// The oldest opset raised: opset 13 moved the axes of `Squeeze`, `Unsqueeze`, `Split` and
/// `ReduceSum` to inputs and changed `Softmax`'s axis semantics, among others, so older
/// graphs are never relabelled.
const MIN_RAISABLE_OPSET: i64 = 13;

/// Default-domain ops whose meaning (not only the element types they accept) changed at an
/// opset in 14..=23: `(op type, the versions that changed it)`. A graph with one of them at
/// an opset below the change is not raised past it. Changes that only add types or add an
/// attribute whose default keeps the old behaviour (`Reshape.allowzero`, `Shape.start/end`,
/// the `layout` of `GRU`/`LSTM`/`RNN`, the `reduction` of `ScatterElements`/`ScatterND`,
/// `Resize`'s `antialias`/`axes`/`keep_aspect_ratio_policy` (18) and `half_pixel_symmetric`
/// (19), `Pad`'s `axes` (18), the `dilations` of `AveragePool` (19), `Cast`'s `saturate`
/// (19), the 4-bit and 8-bit float types of 19 to 23) are not listed.
const SEMANTIC_CHANGES: &[(&str, &[i64])] = &[
    // training_mode and the optional statistics outputs (14), their types (15).
    ("BatchNormalization", &[14, 15]),
    // coordinate_transformation_mode, whose default (half_pixel) is not the old behaviour.
    ("RoiAlign", &[16]),
    // `axes` moved from an attribute to an input (18).
    ("ReduceMean", &[18]),
    ("ReduceMax", &[18]),
    ("ReduceMin", &[18]),
    ("ReduceProd", &[18]),
    ("ReduceL1", &[18]),
    ("ReduceL2", &[18]),
    ("ReduceLogSum", &[18]),
    ("ReduceLogSumExp", &[18]),
    ("ReduceSumSquare", &[18]),
    // Equal parts now need `num_outputs` (18).
    ("Split", &[18]),
    // `dft_length` and `axis` became inputs (20).
    ("DFT", &[20]),
    // scale and bias per channel instead of per group (21).
    ("GroupNormalization", &[21]),
    // `ceil_mode` output sizes (18) and `dilations` (19) of LpPool; MaxPool's are unchanged.
    ("LpPool", &[18]),
];

/// One optimization run at the model's opset.
type Run = fn(&Model, &OptimizeOptions) -> Result<(Model, Report), RewriteError>;

/// [`crate::optimize`]'s opset handling around `run` (the optimization itself).
pub(crate) fn optimize(
    model: &Model,
    options: &OptimizeOptions,
    run: Run,
) -> Result<(Model, Report), RewriteError> {
    let version = model.opset("");
    if let Some(version) = version.filter(|&v| v > MAX_KNOWN_OPSET) {
        return Err(RewriteError::UnsupportedOpset {
            version,
            max: MAX_KNOWN_OPSET,
        });
    }
    let (mut out, mut report) = run(model, options)?;
    let Some(version) = version else {
        return Ok((out, report));
    };
    let too_new: Vec<(i64, &str)> = NEWER_OPS
        .iter()
        .filter(|(op, since, _)| version < *since && count(&out, op) > count(model, op))
        .map(|&(_, since, fusion)| (since, fusion))
        .collect();
    if let Some(target) = too_new.iter().map(|&(since, _)| since).max() {
        // The output's nodes are the ones relabelled: a norm the fusion replaced no longer
        // needs to mean the same at the new opset.
        if can_raise(&out, version, target) {
            raise(&mut out, target);
        } else {
            let fusions = without(&options.fusions, too_new.iter().map(|&(_, f)| f))?;
            let fallback = OptimizeOptions {
                fusions,
                ..options.clone()
            };
            (out, report) = run(model, &fallback)?;
        }
    }
    if !options.fusions.is_empty() {
        annotate_new_values(model, &mut out);
    }
    Ok((out, report))
}

/// Number of default-domain nodes of type `op` in the main graph.
fn count(model: &Model, op: &str) -> usize {
    model
        .graph
        .nodes
        .iter()
        .filter(|n| n.op_type == op && crate::lang::is_default_domain(&n.domain))
        .count()
}

/// True when every op of `model` (at default-domain opset `from`) means the same at `to`:
/// `from` is at least 13 (`MIN_RAISABLE_OPSET`), no op of the table `SEMANTIC_CHANGES` changed in
/// `(from, to]`, and no node has a subgraph (whose ops would need the same check).
pub fn can_raise(model: &Model, from: i64, to: i64) -> bool {
    if from < MIN_RAISABLE_OPSET {
        return false;
    }
    model.graph.nodes.iter().all(|n| {
        let default_domain = crate::lang::is_default_domain(&n.domain);
        let subgraph = n.has_subgraph();
        let changed = default_domain
            && SEMANTIC_CHANGES.iter().any(|(op, versions)| {
                *op == n.op_type && versions.iter().any(|&v| from < v && v <= to)
            });
        !subgraph && !changed
    })
}

/// Imports the default domain at `version` (and the IR version that opset needs at least:
/// 8 for opset 17, 11 for opset 23).
fn raise(model: &mut Model, version: i64) {
    for import in &mut model.opset_imports {
        if crate::lang::is_default_domain(&import.domain) {
            import.version = import.version.max(version);
        }
    }
    if version >= 23 {
        model.ir_version = model.ir_version.max(11);
    } else if version >= 17 {
        model.ir_version = model.ir_version.max(8);
    }
}

/// `set` without the named fusions.
fn without<'a>(
    set: &FusionSet,
    removed: impl Iterator<Item = &'a str>,
) -> Result<FusionSet, RewriteError> {
    let removed: Vec<&str> = removed.collect();
    let kept: Vec<&str> = set.names().filter(|n| !removed.contains(n)).collect();
    if kept.is_empty() {
        "none".parse()
    } else {
        kept.join(",").parse()
    }
}

/// Adds `value_info` (element type and shape from the analysis of the output graph) for
/// every value of `out` that `model` does not have. Leaves the graph as it is when the
/// analysis cannot import it.
fn annotate_new_values(model: &Model, out: &mut Model) {
    let g = &model.graph;
    let mut known: HashSet<&str> = g
        .nodes
        .iter()
        .flat_map(|n| n.outputs.iter().map(String::as_str))
        .collect();
    known.extend(g.inputs.iter().map(|v| v.name.as_str()));
    known.extend(g.outputs.iter().map(|v| v.name.as_str()));
    known.extend(g.value_info.iter().map(|v| v.name.as_str()));
    known.extend(g.initializers.keys().map(String::as_str));
    let Ok((egraph, imported)) = crate::import::import(out) else {
        return;
    };
    let declared: HashSet<String> = out
        .graph
        .outputs
        .iter()
        .chain(&out.graph.value_info)
        .map(|v| v.name.clone())
        .collect();
    let mut added = Vec::new();
    for (name, id) in &imported.names {
        if name.is_empty()
            || known.contains(name.as_str())
            || declared.contains(name)
            || out.graph.initializer(name).is_some()
        {
            continue;
        }
        let data = &egraph[egraph.find(*id)].data;
        let Some(dtype) = data.dtype else { continue };
        let shape = data
            .shape
            .as_ref()
            .map(|s| s.iter().map(onnx_dim).collect());
        added.push(ValueInfo {
            name: name.clone(),
            ty: Some(ValueType::tensor(dtype, shape)),
            doc_string: String::new(),
            metadata_props: Vec::new(),
        });
    }
    out.graph.value_info.extend(added);
}

/// A known size, a named symbol, or unknown (products and unnamed dims).
fn onnx_dim(d: &SymDim) -> Dim {
    if let Some(v) = d.as_known() {
        return Dim::Known(v);
    }
    match d.as_symbol() {
        Some(s) if !s.as_str().starts_with('?') => Dim::Symbol(s.as_str().to_string()),
        _ => Dim::Unknown,
    }
}
