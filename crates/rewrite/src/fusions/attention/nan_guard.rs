//! The exporter's NaN guard, `Where(IsNaN(P), 0, P)` after `P = Softmax(scores)`, kept in
//! the fused graph after the fused output `F` (`docs/fusions.md`, "The NaN guard").
//!
//! Two exact forms:
//! - **by column** (always applicable): `Where(IsNaN(F), ReduceSum(V · 0, T axis), F)`. It
//!   needs `V` as a value, so packed `Attention` pays for the value projection once more.
//! - **by input** (when the value projection's input `x` is provably bounded): `Where(IsNaN(F),
//!   ReduceSum(x · 0, [1, 2]), F)`, a per-batch 0 or NaN read from `x` itself, with no
//!   projection at all. [`bounded_input`] states when it applies and why it is exact.

use std::ops::Range;
use std::sync::Arc;

use egg::Id;
use transfuse_ir::{DataType, MS_DOMAIN};

use crate::analysis::EGraph;
use crate::lang::{AttrVal, Onnx, OpNode, TensorId};
use crate::rule::{add_f32, add_i64_vector, add_op, const_tensor, dtype, ops, shape};

/// The value projection of an attention: `V = x · W[:, columns] (+ b[columns])`, `W` a 2-D
/// constant (`[Hin, *]`), `b` a 1-D one.
#[derive(Clone, Debug)]
pub(super) struct ValueLinear {
    pub x: Id,
    pub weight: TensorId,
    pub columns: Range<usize>,
    pub bias: Option<TensorId>,
}

/// The guarded fused output: the by-input form where [`bounded_input`] proves it exact,
/// the by-column form on `value` (`V` as `[B, T, H]`) otherwise.
pub(super) fn guard(
    eg: &mut EGraph,
    out: Id,
    value: impl FnOnce(&mut EGraph) -> Option<Id>,
    linear: Option<&ValueLinear>,
) -> Option<Id> {
    let replacement = match linear.filter(|l| bounded_input(eg, l)) {
        Some(l) => batch_nan(eg, l.x),
        None => {
            let v = value(eg)?;
            sum_times_zero(eg, v, &[1])
        }
    };
    let nan = add_op(eg, OpNode::new("IsNaN", ""), vec![out]);
    Some(add_op(
        eg,
        OpNode::new("Where", ""),
        vec![nan, replacement, out],
    ))
}

/// `ReduceSum(t · 0, axes, keepdims = 1)`: 0 where the reduced elements are all finite, NaN
/// where one is NaN or infinite.
fn sum_times_zero(eg: &mut EGraph, t: Id, axes: &[i64]) -> Id {
    let zero = add_f32(eg, vec![], &[0.0]);
    let zeroed = add_op(eg, OpNode::new("Mul", ""), vec![t, zero]);
    let sum = OpNode::new("ReduceSum", "").with_attr("keepdims", AttrVal::Int(1));
    if eg.analysis.onnx_opset.is_some_and(|v| v >= 13) {
        let axes = add_i64_vector(eg, axes);
        add_op(eg, sum, vec![zeroed, axes])
    } else {
        let axes = AttrVal::Ints(Arc::from(axes.to_vec()));
        add_op(eg, sum.with_attr("axes", axes), vec![zeroed])
    }
}

/// `[B, 1, 1]`: 0 for a batch whose `x` (`[B, S, Hin]`) is all finite, NaN otherwise.
fn batch_nan(eg: &mut EGraph, x: Id) -> Id {
    sum_times_zero(eg, x, &[1, 2])
}

/// Headroom below `f32::MAX` that the bound on `|V|` must keep: covers the rounding of the
/// `Hin`-term dot products (relative error far below 1) many times over.
const OVERFLOW_HEADROOM: f64 = 16_777_216.0; // 2^24

/// True when the by-input guard is exact for this value projection: `x` is the output of a
/// normalization over its last axis (`LayerNormalization`, `RMSNormalization` or
/// `SimplifiedLayerNormalization`) with finite constant scale (and bias), `W` and `b` are
/// finite, and the resulting bound on `|V|` stays far below `f32::MAX`.
///
/// Why the guard is then exact (with `R = Σ_t 0 · V[t, c]`, the by-column replacement, which
/// is exact by itself):
/// 1. `x` finite ⇒ `V` finite. A normalized value is bounded: `Σ_k (x_k - mean)² = D · var`,
///    so `|x_k - mean| / sqrt(var + eps) ≤ sqrt(D)`, and likewise `x_k / sqrt(mean(x²) + eps)`
///    for the RMS form. Rounding (the mean stored at f32 precision) at most adds `2·sqrt(D)`,
///    so `|x_k| ≤ 4·sqrt(D)·|scale_k| + |bias_k|` and `|V[c]| ≤ Σ_k that · |W[k, c]| + |b[c]|`,
///    which this checks is far from overflowing. Then `R = 0`.
/// 2. `x[t0]` holds a non-finite value ⇒ every column of `V[t0]` is non-finite: NaN times
///    anything is NaN, `±inf · w` is infinite or (for `w = 0`) NaN, and adding finite terms
///    keeps that. Then `R` is NaN in every column of that batch.
///
/// So `R` is, per batch, 0 when `x` is finite and NaN otherwise: `ReduceSum(x · 0)`.
pub(super) fn bounded_input(eg: &EGraph, linear: &ValueLinear) -> bool {
    value_bound(eg, linear).is_some_and(|b| b <= f64::from(f32::MAX) / OVERFLOW_HEADROOM)
}

/// The bound on `|V|` of point 1 above, `None` when a condition fails.
fn value_bound(eg: &EGraph, linear: &ValueLinear) -> Option<f64> {
    if dtype(eg, linear.x) != Some(DataType::Float) || shape(eg, linear.x)?.len() != 3 {
        return None;
    }
    let x_bound = normalized_bound(eg, linear.x)?;
    let tensors = &eg.analysis.tensors;
    let w = tensors.tensor(linear.weight)?;
    let [rows, cols] = w.dims.as_slice() else {
        return None;
    };
    let (rows, cols) = (usize::try_from(*rows).ok()?, usize::try_from(*cols).ok()?);
    if rows != x_bound.len() || linear.columns.end > cols || linear.columns.is_empty() {
        return None;
    }
    let weights = w.to_f32_vec().ok()?;
    let bias = match linear.bias {
        Some(b) => Some(tensors.tensor(b)?.to_f32_vec().ok()?),
        None => None,
    };
    let mut worst = 0.0f64;
    for c in linear.columns.clone() {
        let b = match &bias {
            Some(b) => f64::from(*b.get(c)?),
            None => 0.0,
        };
        let mut sum = b.abs();
        for (k, xb) in x_bound.iter().enumerate() {
            sum += xb * f64::from(*weights.get(k * cols + c)?).abs();
        }
        // A NaN or infinite weight or bias ends it here (`max` would skip a NaN).
        if !sum.is_finite() {
            return None;
        }
        worst = worst.max(sum);
    }
    Some(worst)
}

/// Per channel, a bound on `|x|` when class `x` is a last-axis normalization's output with
/// finite constant scale (and bias): `4·sqrt(D)·|scale_k| + |bias_k|` (see [`bounded_input`]).
fn normalized_bound(eg: &EGraph, x: Id) -> Option<Vec<f64>> {
    let rank = i64::try_from(shape(eg, x)?.len()).ok()?;
    let norms = [
        ("", "LayerNormalization"),
        ("", "RMSNormalization"),
        (MS_DOMAIN, "SimplifiedLayerNormalization"),
    ];
    norms.iter().find_map(|&(domain, op)| {
        ops(eg, x, domain, op).find_map(|(node, c)| {
            let axis = node.attr_int("axis").unwrap_or(-1);
            if node.outputs != 1 || (axis != -1 && axis != rank - 1) {
                return None;
            }
            let scale = finite_vector(eg, *c.get(1)?)?;
            let d = (scale.len() as f64).sqrt();
            let bias = match c.get(2) {
                Some(&b) if op == "LayerNormalization" => match const_tensor(eg, b) {
                    Some(_) => Some(finite_vector(eg, b)?),
                    // An absent optional bias is zero; anything else is not known.
                    None if eg[b].nodes.iter().any(|n| matches!(n, Onnx::Absent)) => None,
                    None => return None,
                },
                _ => None,
            };
            if bias.as_ref().is_some_and(|b| b.len() != scale.len()) {
                return None;
            }
            Some(
                scale
                    .iter()
                    .enumerate()
                    .map(|(k, s)| 4.0 * d * s.abs() + bias.as_ref().map_or(0.0, |b| b[k].abs()))
                    .collect(),
            )
        })
    })
}

/// The values of a 1-D float constant in class `id`, when all are finite.
fn finite_vector(eg: &EGraph, id: Id) -> Option<Vec<f64>> {
    let t = eg.analysis.tensors.tensor(const_tensor(eg, id)?)?;
    if t.dims.len() != 1 || t.dtype != DataType::Float {
        return None;
    }
    let values: Vec<f64> = t.to_f32_vec().ok()?.into_iter().map(f64::from).collect();
    values.iter().all(|v| v.is_finite()).then_some(values)
}
