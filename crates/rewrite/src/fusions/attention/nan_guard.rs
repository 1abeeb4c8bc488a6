//! The exporter's NaN guard, `Where(IsNaN(P), 0, P)` after `P = Softmax(scores)`, kept in
//! the fused graph after the fused output `F` (`docs/fusions.md`, "The NaN guard").
//!
//! Four exact forms, the cheapest that is proven:
//! - **none** (no bias, and the projections' input `x` bounded so that scores and `V` cannot
//!   overflow): the guard is the identity, see [`Bounds::scores_are_bounded`].
//! - **by mask** (a `-inf` key-padding mask, `x` bounded so that scores and `V` cannot
//!   overflow): the fused op takes the finite [`FINITE_FILL`] and its output is multiplied by
//!   a per-batch "some key kept" flag computed once from the mask, see [`masked_keep`].
//! - **by input** (`x` bounded so that `V` cannot overflow): `Where(IsNaN(F), ReduceSum(x · 0,
//!   [1, 2]), F)`, a per-batch 0 or NaN read from `x` itself, with no projection at all.
//!   [`Bounds::value_is_bounded`] states when it applies and why it is exact.
//! - **by column** (always applicable): `Where(IsNaN(F), ReduceSum(V · 0, T axis), F)`. It
//!   needs `V` as a value, so packed `Attention` pays for the value projection once more. A
//!   heads-first core (rotary Q and K) always takes this form ([`heads_first_guard`]).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ops::Range;
use std::sync::Arc;

use egg::Id;
use transfuse_ir::{DataType, MS_DOMAIN};

use crate::analysis::EGraph;
use crate::lang::{AttrVal, Onnx, OpNode, TensorId};
use crate::rule::{add_f32, add_i64_vector, add_op, const_tensor, dtype, ops, shape};

/// One projection of an attention: `x · W[:, columns] (+ b[columns])`, `W` a 2-D constant
/// (`[Hin, *]`), `b` a 1-D one.
#[derive(Clone, Debug)]
pub(super) struct Columns {
    pub weight: TensorId,
    pub columns: Range<usize>,
    pub bias: Option<TensorId>,
}

/// The Q, K and V projections of one input `x`.
#[derive(Clone, Debug)]
pub(super) struct Projections {
    pub x: Id,
    pub query: Columns,
    pub key: Columns,
    pub value: Columns,
}

/// The guarded fused output `F`: unguarded where [`Bounds::scores_are_bounded`] holds, the
/// by-input form where [`Bounds::value_is_bounded`] does, the by-column form on `value` (`V` as
/// `[B, T, H]`) otherwise. `finite_bias`: the scores get no bias, or a key-padding mask adding
/// `0` and a finite fill; `scale`: the scores' factor.
pub(super) fn guard(
    eg: &mut EGraph,
    out: Id,
    value: impl FnOnce(&mut EGraph) -> Option<Id>,
    projections: Option<&Projections>,
    finite_bias: bool,
    scale: f32,
) -> Option<Id> {
    let mut bounds = projections.and_then(|p| Bounds::new(eg, p.x));
    let bounded = projections.filter(|p| bounds.as_mut().is_some_and(|b| b.value_is_bounded(p)));
    if let (Some(p), Some(b)) = (bounded, bounds.as_mut())
        && finite_bias
        && b.scores_are_bounded(p, scale)
    {
        return Some(out);
    }
    let replacement = match bounded {
        Some(p) => batch_nan(eg, p.x),
        None => {
            let v = value(eg)?;
            sum_times_zero(eg, v, &[1])
        }
    };
    Some(nan_replaced(eg, out, replacement))
}

/// `Where(IsNaN(out), replacement, out)`: the form every replacing guard takes.
fn nan_replaced(eg: &mut EGraph, out: Id, replacement: Id) -> Id {
    let nan = add_op(eg, OpNode::new("IsNaN", ""), vec![out]);
    add_op(eg, OpNode::new("Where", ""), vec![nan, replacement, out])
}

/// The fill the fused op gets in place of a key-padding mask's `-inf` ([`masked_keep`]):
/// finite, so a fully masked row stays finite, and below `ABSORBING_FILL`, so ONNX Runtime's
/// kernels that replace a masked score by the fill and those that add it agree.
pub(super) const FINITE_FILL: f32 = f32::MIN;

/// The bound on the scores that [`Bounds::scores_are_bounded`] requires: far below half an
/// ulp of `f32::MAX` (`2^103`), so a score plus any finite fill (down to `FINITE_FILL`) stays
/// finite, and `exp(score + fill - max)` is exactly 0 next to a kept score when the fill is
/// `FINITE_FILL`.
const SCORE_LIMIT: f64 = 1e30;

/// `keep` (`[B, T]`) when the guarded attention's bias is a `-inf` key-padding mask and the
/// guard can instead be `F' · any_kept[b]` ([`keep_guard`]), with `F'` the fused op on the
/// same mask but the finite [`FINITE_FILL`]. It needs the by-input conditions
/// ([`Bounds::value_is_bounded`]) and scores bounded by [`SCORE_LIMIT`].
///
/// Why `F' · any_kept` equals the guarded original `O`:
/// 1. `x[b]` finite and some key kept: the masked scores become `s + FINITE_FILL` instead of
///    `-inf`; with `|s| ≤ 1e30` both give weight exactly 0 next to a kept score, so `F' = O`
///    (its rows are finite: no NaN for the guard to replace), and `any_kept = 1`.
/// 2. `x[b]` finite and every key masked: `O` is `0 · V = 0` (`V` finite). `F'` is finite
///    (every score near the fill: a finite Softmax row, a mean of finite `V`), times 0 is 0.
/// 3. `x[b, t0]` not finite: every column of `K[t0]` and `V[t0]` is not finite (by-input
///    point 2), so each score `s[q, t0]` is NaN or infinite. `O` is NaN everywhere in `b`: a
///    NaN row of `P` is replaced by 0 and `0 · V[t0]` is NaN; a finite row has `P[q, t0] = 0`
///    (its score was `-inf`), and again `0 · V[t0]` is NaN. `F'` is NaN everywhere too: a NaN
///    or `+inf` score (or `+inf + fill`) makes the row NaN, and a `-inf` or replaced one gives
///    weight 0 (or, fully masked, a positive one) against a non-finite `V[t0]`. NaN times
///    `any_kept` is NaN.
pub(super) fn masked_keep(
    eg: &EGraph,
    bias: Id,
    projections: Option<&Projections>,
    scale: f32,
) -> Option<Id> {
    let p = projections?;
    if eg.analysis.onnx_opset.is_none_or(|v| v < 13) {
        return None;
    }
    let keep = super::key_padding::neg_inf_key_padding(eg, bias, p.x)?;
    let mut bounds = Bounds::new(eg, p.x)?;
    (bounds.value_is_bounded(p) && bounds.scores_are_bounded(p, scale)).then_some(keep)
}

/// `Mul(out, any_kept)` with `any_kept: [B, 1, 1]` 1 where batch `b` keeps a key and 0 where
/// its mask is all false: `ReduceMax(Cast(Unsqueeze(keep, [2]), float), [1])`, computed once
/// for the whole network (it reads only the mask).
pub(super) fn keep_guard(eg: &mut EGraph, out: Id, keep: Id) -> Id {
    let axes = add_i64_vector(eg, &[2]);
    let unsqueezed = add_op(eg, OpNode::new("Unsqueeze", ""), vec![keep, axes]);
    let to_float =
        OpNode::new("Cast", "").with_attr("to", AttrVal::Int(i64::from(DataType::Float.code())));
    let kept = add_op(eg, to_float, vec![unsqueezed]);
    let any_kept = reduce(eg, "ReduceMax", 18, kept, &[1]);
    add_op(eg, OpNode::new("Mul", ""), vec![out, any_kept])
}

/// `op(t, axes, keepdims = 1)`, the axes an input from opset `axes_input_since` on and an
/// attribute before.
fn reduce(eg: &mut EGraph, op: &str, axes_input_since: i64, t: Id, axes: &[i64]) -> Id {
    let node = OpNode::new(op, "").with_attr("keepdims", AttrVal::Int(1));
    if eg
        .analysis
        .onnx_opset
        .is_some_and(|v| v >= axes_input_since)
    {
        let axes = add_i64_vector(eg, axes);
        add_op(eg, node, vec![t, axes])
    } else {
        let axes = AttrVal::Ints(Arc::from(axes.to_vec()));
        add_op(eg, node.with_attr("axes", axes), vec![t])
    }
}

/// `ReduceSum(t · 0, axes, keepdims = 1)`: 0 where the reduced elements are all finite, NaN
/// where one is NaN or infinite.
/// The by-column guard for a heads-first core (`mapping.rs`): `V` is `[B, N, T, d]`, so its
/// per-column 0-or-NaN sum over `T` (`[B, N, 1, d]`) is merged to `[B, 1, N·d]` by `merge` like
/// the output's heads, and `Where(IsNaN(F), that, F)` is the by-column form of [`guard`].
pub(super) fn heads_first_guard(
    eg: &mut EGraph,
    out: Id,
    value: Id,
    merge: impl FnOnce(&mut EGraph, Id) -> Id,
) -> Id {
    let column_sums = sum_times_zero(eg, value, &[2]);
    let replacement = merge(eg, column_sums);
    nan_replaced(eg, out, replacement)
}

fn sum_times_zero(eg: &mut EGraph, t: Id, axes: &[i64]) -> Id {
    let zero = add_f32(eg, vec![], &[0.0]);
    let zeroed = add_op(eg, OpNode::new("Mul", ""), vec![t, zero]);
    reduce(eg, "ReduceSum", 13, zeroed, axes)
}

/// `[B, 1, 1]`: 0 for a batch whose `x` (`[B, S, Hin]`) is all finite, NaN otherwise.
fn batch_nan(eg: &mut EGraph, x: Id) -> Id {
    sum_times_zero(eg, x, &[1, 2])
}

/// Headroom below `f32::MAX` that the bound on `|V|` must keep: covers the rounding of the
/// `Hin`-term dot products (relative error far below 1) many times over.
const OVERFLOW_HEADROOM: f64 = 16_777_216.0; // 2^24

/// Bounds derived from the projections' input `x`: a bound per channel of `|x|` (see
/// [`Bounds::value_is_bounded`]) and the projection weights read as f32, each once (the three
/// parts of a packed projection share one weight).
struct Bounds<'a> {
    eg: &'a EGraph,
    x: Vec<f64>,
    weights: HashMap<TensorId, Vec<f32>>,
}

impl<'a> Bounds<'a> {
    /// `None` unless `x` is a `[B, S, Hin]` f32 normalization output ([`normalized_bound`]).
    fn new(eg: &'a EGraph, x: Id) -> Option<Bounds<'a>> {
        if dtype(eg, x) != Some(DataType::Float) || shape(eg, x)?.len() != 3 {
            return None;
        }
        Some(Bounds {
            eg,
            x: normalized_bound(eg, x)?,
            weights: HashMap::new(),
        })
    }

    /// True when the by-input guard is exact for these projections: `x` is the output of a
    /// normalization over its last axis (`LayerNormalization`, `RMSNormalization` or
    /// `SimplifiedLayerNormalization`) with finite constant scale (and bias), `W` and `b` are
    /// finite, and the resulting bound on `|V|` stays far below `f32::MAX`.
    ///
    /// Why the guard is then exact (with `R = Σ_t 0 · V[t, c]`, the by-column replacement,
    /// which is exact by itself):
    /// 1. `x` finite ⇒ `V` finite. A normalized value is bounded: `Σ_k (x_k - mean)² = D ·
    ///    var`, so `|x_k - mean| / sqrt(var + eps) ≤ sqrt(D)`, and likewise `x_k /
    ///    sqrt(mean(x²) + eps)` for the RMS form. Rounding (the mean stored at f32 precision)
    ///    at most adds `2·sqrt(D)`, so `|x_k| ≤ 4·sqrt(D)·|scale_k| + |bias_k|` and `|V[c]| ≤
    ///    Σ_k that · |W[k, c]| + |b[c]|`, which this checks is far from overflowing. Then
    ///    `R = 0`.
    /// 2. `x[t0]` holds a non-finite value ⇒ every column of `V[t0]` is non-finite: NaN times
    ///    anything is NaN, `±inf · w` is infinite or (for `w = 0`) NaN, and adding finite
    ///    terms keeps that. Then `R` is NaN in every column of that batch.
    ///
    /// So `R` is, per batch, 0 when `x` is finite and NaN otherwise: `ReduceSum(x · 0)`.
    fn value_is_bounded(&mut self, p: &Projections) -> bool {
        self.columns(&p.value)
            .map(|v| v.into_iter().fold(0.0, f64::max))
            .is_some_and(within_headroom)
    }

    /// True when, besides [`Bounds::value_is_bounded`], the scores `scale · q · kᵀ` are
    /// bounded by [`SCORE_LIMIT`] by the same argument (`|q_c| ≤ Bq[c]`, `|k_c| ≤ Bk[c]`, so
    /// a head's score is at most `|scale| · Σ_c Bq[c] · Bk[c]`) and the bias is finite: none,
    /// or a key-padding mask adding `0` and a finite fill (the caller checks that).
    ///
    /// Then the guard changes nothing. Where `x` is finite, the scores are finite and so is
    /// a score plus the bias (`|s| ≤ 1e30` is absorbed even by a fill of `-f32::MAX`), so no
    /// Softmax row is NaN, and `V` is finite, so `F` has no NaN and the guard passes it
    /// through. Where a batch of `x` holds a non-finite value, the guard's replacement is NaN
    /// (point 2 above), and so is `F` wherever the guard would replace it: the guard returns
    /// `F` again.
    fn scores_are_bounded(&mut self, p: &Projections, scale: f32) -> bool {
        self.score_bound(p, scale)
            .is_some_and(|bound| bound <= SCORE_LIMIT)
    }

    /// A bound on `|scale · q · kᵀ|` where `x` is finite: `|scale| · Σ_c Bq[c] · Bk[c]`.
    fn score_bound(&mut self, p: &Projections, scale: f32) -> Option<f64> {
        let (q, k) = (self.columns(&p.query)?, self.columns(&p.key)?);
        let dot: f64 = q.iter().zip(&k).map(|(a, b)| a * b).sum();
        let bound = f64::from(scale).abs() * dot;
        (scale.is_finite() && q.len() == k.len() && bound.is_finite()).then_some(bound)
    }

    /// Per output column of a projection, a bound on its `|value|`: `Σ_k x[k] · |W[k, c]| +
    /// |b[c]|`. `None` when a weight or bias is NaN or infinite (or a bound is), or the sizes
    /// do not fit.
    fn columns(&mut self, linear: &Columns) -> Option<Vec<f64>> {
        let tensors = &self.eg.analysis.tensors;
        let w = tensors.tensor(linear.weight)?;
        let [rows, cols] = w.dims.as_slice() else {
            return None;
        };
        let (rows, cols) = (usize::try_from(*rows).ok()?, usize::try_from(*cols).ok()?);
        if rows != self.x.len() || linear.columns.end > cols || linear.columns.is_empty() {
            return None;
        }
        let weights = match self.weights.entry(linear.weight) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(w.to_f32_vec().ok()?),
        };
        let bias = match linear.bias {
            Some(b) => Some(tensors.tensor(b)?.to_f32_vec().ok()?),
            None => None,
        };
        let mut bounds = Vec::with_capacity(linear.columns.len());
        for c in linear.columns.clone() {
            let b = match &bias {
                Some(b) => f64::from(*b.get(c)?),
                None => 0.0,
            };
            let mut sum = b.abs();
            for (k, xb) in self.x.iter().enumerate() {
                sum += xb * f64::from(*weights.get(k * cols + c)?).abs();
            }
            // A NaN or infinite weight or bias ends it here (`max` would skip a NaN).
            if !sum.is_finite() {
                return None;
            }
            bounds.push(sum);
        }
        Some(bounds)
    }
}

/// True when `bound` is finite and keeps [`OVERFLOW_HEADROOM`] below `f32::MAX`.
fn within_headroom(bound: f64) -> bool {
    bound.is_finite() && bound <= f64::from(f32::MAX) / OVERFLOW_HEADROOM
}

/// Per channel, a bound on `|x|` when class `x` is a last-axis normalization's output with
/// finite constant scale (and bias): `4·sqrt(D)·|scale_k| + |bias_k|` (see
/// [`Bounds::value_is_bounded`]).
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
