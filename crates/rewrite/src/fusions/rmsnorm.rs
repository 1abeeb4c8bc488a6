//! RMS normalization, recognized as an internal `SimplifiedLayerNormalization` that
//! `skiprmsnorm` turns into com.microsoft `SkipSimplifiedLayerNormalization` and that this
//! fusion emits, where no skip form applies, as ONNX's `RMSNormalization` (opset 23).
//!
//! ONNX Runtime registers `SimplifiedLayerNormalization` in the ONNX domain (version 1), but
//! ONNX itself has no such op at any opset, so a model carrying it fails the ONNX checker;
//! it is never emitted. `RMSNormalization` exists from opset 23 on: the opset handling
//! (`opset.rs`) raises the model's opset when every op it keeps means the same there, and
//! otherwise optimizes again without this fusion, so a standalone RMS norm (one with no
//! residual add before it) stays decomposed. A `SimplifiedLayerNormalization` already in the
//! input is matched too.
//!
//! Matches `x / sqrt(mean(x^2) + eps)` with the division as `Div`, `Mul` by `Reciprocal`
//! or `Mul` by `Pow(.., -0.5)`, the square as `Pow(x, 2)` or `x * x`; then `* gamma` folds
//! into the scale. T5 computes the statistics on `Cast(x, float)`: when `x` is already
//! float the cast is removed by normalization and the pattern is the same. The mean must
//! reduce the last axis with keepdims; a numerator that is itself centered (`x - mean(x)`)
//! is a layer norm, left to `layernorm`.
//!
//! Shapes may be partly known: the fused kernel needs only the normalized axis to be the
//! last one (axes `[-1]`, or `[rank - 1]` with the rank known) and the scale's length,
//! which the `gamma` initializer gives. See `norm_conditions::channel_len` for why `gamma`'s own length is
//! enough when `x`'s last dim is unknown.

use egg::Id;

use super::norm_conditions::{channel_len, epsilon_of, mean_over_last_axis};
use crate::analysis::EGraph;
use crate::error::RewriteError;
use crate::lang::{AttrVal, F32Bits, INTERNAL_DOMAIN, OpNode};
use crate::rule::{
    Match, Rewrite, add_f32, add_op, binary, data, dtype, is_const, last_dim, ops, rule, same,
    same_shape, scalar, shape,
};
use transfuse_ir::DataType;

/// True when class `c` holds `x - mean(x)` over the last axis (a layer norm's numerator).
fn is_centered(eg: &EGraph, c: Id) -> bool {
    binary(eg, c, "Sub").any(|(x, m)| {
        ops(eg, m, "", "ReduceMean")
            .any(|(n, ch)| same(eg, ch[0], x) && mean_over_last_axis(eg, n, ch))
    })
}

/// True when class `var` holds `mean(x^2)` over the last axis.
fn is_mean_square(eg: &EGraph, var: Id, x: Id) -> bool {
    ops(eg, var, "", "ReduceMean").any(|(n, c)| {
        mean_over_last_axis(eg, n, c) && {
            let sq = c[0];
            binary(eg, sq, "Pow").any(|(a, e)| same(eg, a, x) && scalar(eg, e) == Some(2.0))
                || binary(eg, sq, "Mul").any(|(a, b)| same(eg, a, x) && same(eg, b, x))
        }
    })
}

/// `eps` when class `s` holds `mean(x^2) + eps` (either operand order).
fn mean_square_plus_eps(eg: &EGraph, s: Id, x: Id) -> Option<f32> {
    binary(eg, s, "Add").find_map(|(a, b)| {
        if is_mean_square(eg, a, x) {
            epsilon_of(eg, b, x)
        } else if is_mean_square(eg, b, x) {
            epsilon_of(eg, a, x)
        } else {
            None
        }
    })
}

/// `eps` when class `r` holds `1 / sqrt(mean(x^2) + eps)`: `Reciprocal(Sqrt(..))` or
/// `Pow(.., -0.5)`.
fn inverse_rms(eg: &EGraph, r: Id, x: Id) -> Option<f32> {
    ops(eg, r, "", "Reciprocal")
        .find_map(|(_, c)| {
            ops(eg, c[0], "", "Sqrt").find_map(|(_, s)| mean_square_plus_eps(eg, s[0], x))
        })
        .or_else(|| {
            binary(eg, r, "Pow")
                .find_map(|(s, p)| (scalar(eg, p) == Some(-0.5)).then_some(s))
                .and_then(|s| mean_square_plus_eps(eg, s, x))
        })
}

/// `(x, eps)` when class `n` holds `x / sqrt(mean(x^2) + eps)` in one of its spellings,
/// with `x` a float tensor that is not a layer norm's centered value, and the result's
/// shape that of `x`.
fn rms_core(eg: &EGraph, n: Id) -> Option<(Id, f32)> {
    let by_div = binary(eg, n, "Div").find_map(|(x, s)| {
        ops(eg, s, "", "Sqrt").find_map(|(_, c)| Some((x, mean_square_plus_eps(eg, c[0], x)?)))
    });
    let by_mul = || {
        binary(eg, n, "Mul").find_map(|(a, b)| {
            inverse_rms(eg, b, a)
                .map(|e| (a, e))
                .or_else(|| inverse_rms(eg, a, b).map(|e| (b, e)))
        })
    };
    let (x, eps) = by_div.or_else(by_mul)?;
    // `mean(x^2)` keeps `x`'s rank with a last dim of 1 and `eps` cannot raise the rank
    // (checked in `epsilon_of`), so the quotient has `x`'s shape.
    (dtype(eg, x) == Some(DataType::Float) && !is_centered(eg, x)).then_some((x, eps))
}

fn rms_norm(eps: f32) -> OpNode {
    OpNode::new("SimplifiedLayerNormalization", INTERNAL_DOMAIN)
        .with_attr("axis", AttrVal::Int(-1))
        .with_attr("epsilon", AttrVal::Float(F32Bits::new(eps)))
}

/// The unscaled core -> `SimplifiedLayerNormalization(x, ones)`, when the last dim is known.
fn core(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let (x, eps) = rms_core(eg, m.root)?;
    let h = last_dim(eg, x)?.as_known()?;
    let ones = add_f32(eg, vec![h], &vec![1.0; usize::try_from(h).ok()?]);
    Some(add_op(eg, rms_norm(eps), vec![x, ones]))
}

/// `core * gamma` (or `SimplifiedLayerNormalization(x, ones) * gamma`) ->
/// `SimplifiedLayerNormalization(x, gamma)`; needs only `gamma`'s length (see
/// [`channel_len`]), so it also fires when `x`'s shape is unknown.
fn scaled(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let (n, g) = (m.get("?n")?, m.get("?g")?);
    if !is_const(eg, g) {
        return None;
    }
    let found = rms_core(eg, n).or_else(|| {
        rms_norm_nodes(eg, n).find_map(|(node, c)| {
            let unit = c.len() == 2
                && node.outputs == 1
                && node.attr_int("axis").unwrap_or(-1) == -1
                && data(eg, c[1]).uniform.as_ref().and_then(|u| u.as_f64()) == Some(1.0);
            unit.then(|| {
                (
                    c[0],
                    node.attr_float("epsilon")
                        .unwrap_or(crate::rule::LN_DEFAULT_EPSILON),
                )
            })
        })
    });
    let (x, eps) = found?;
    channel_len(eg, g, x)?;
    Some(add_op(eg, rms_norm(eps), vec![x, g]))
}

use crate::rule::MS;

/// `SimplifiedLayerNormalization(x, gamma)` (the internal form, over the last axis, one
/// output) -> ONNX `RMSNormalization(x, gamma)` with the same epsilon, statistics in f32.
fn onnx_rms_norm(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let (x, g) = (m.get("?x")?, m.get("?g")?);
    let eps = rms_norm_nodes(eg, m.root).find_map(|(n, c)| {
        let fits = c.len() == 2
            && n.outputs == 1
            && n.attr_int("axis").unwrap_or(-1) == -1
            && same(eg, c[0], x)
            && same(eg, c[1], g);
        fits.then(|| {
            n.attr_float("epsilon")
                .unwrap_or(crate::rule::LN_DEFAULT_EPSILON)
        })
    })?;
    if dtype(eg, x) != Some(DataType::Float) || !is_const(eg, g) {
        return None;
    }
    let node = OpNode::new("RMSNormalization", "")
        .with_attr("axis", AttrVal::Int(-1))
        .with_attr("epsilon", AttrVal::Float(F32Bits::new(eps)))
        .with_attr("stash_type", AttrVal::Int(1));
    Some(add_op(eg, node, vec![x, g]))
}

/// The `SimplifiedLayerNormalization` e-nodes of class `c`: the internal ones this fusion
/// adds and ONNX-domain ones from the input.
fn rms_norm_nodes(eg: &EGraph, c: Id) -> impl Iterator<Item = (&OpNode, &[Id])> + '_ {
    ops(eg, c, INTERNAL_DOMAIN, "SimplifiedLayerNormalization").chain(ops(
        eg,
        c,
        "",
        "SimplifiedLayerNormalization",
    ))
}

/// `SimplifiedLayerNormalization(a + b, gamma)` -> com.microsoft
/// `SkipSimplifiedLayerNormalization(a, b, gamma)`: output 0 joins the norm's class and
/// output 3 (`input_skip_bias_sum`) the sum's. Conditions as for `skiplayernorm`: `a`, `b`
/// float, the same rank-3 shape with a known hidden size, neither constant; `gamma` a
/// constant vector of the hidden size; the norm over the last axis with one output.
fn skip(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let (a, b, g) = (m.get("?a")?, m.get("?b")?, m.get("?g")?);
    let (eps, sum) = rms_norm_nodes(eg, m.root).find_map(|(n, c)| {
        let fits = c.len() == 2
            && n.outputs == 1
            && n.attr_int("axis").unwrap_or(-1) == -1
            && same(eg, c[1], g)
            && binary(eg, c[0], "Add").any(|(x, y)| same(eg, x, a) && same(eg, y, b));
        fits.then(|| {
            (
                n.attr_float("epsilon")
                    .unwrap_or(crate::rule::LN_DEFAULT_EPSILON),
                c[0],
            )
        })
    })?;
    let hidden = shape(eg, a).and_then(|s| match s.as_slice() {
        [_, _, h] => h.as_known(),
        _ => None,
    })?;
    if dtype(eg, a) != Some(DataType::Float)
        || !same_shape(eg, a, b)
        || is_const(eg, a)
        || is_const(eg, b)
        || channel_len(eg, g, a) != Some(hidden)
    {
        return None;
    }
    let node = OpNode::new("SkipSimplifiedLayerNormalization", MS)
        .with_outputs(4)
        .with_attr("epsilon", AttrVal::Float(F32Bits::new(eps)));
    let fused = add_op(eg, node, vec![a, b, g]);
    let sum_out = eg.add(crate::lang::Onnx::Proj(3, [fused]));
    eg.union(sum_out, sum);
    Some(eg.add(crate::lang::Onnx::Proj(0, [fused])))
}

/// The rules of `rmsnorm`.
pub fn rules() -> Result<Vec<Rewrite>, RewriteError> {
    Ok(vec![
        rule(
            "rmsnorm-core",
            &[
                "(Div ?x (Sqrt ?s))",
                "(Mul ?x (Reciprocal (Sqrt ?s)))",
                "(Mul (Reciprocal (Sqrt ?s)) ?x)",
                "(Mul ?x (Pow ?s ?p))",
            ],
            core,
        )?,
        rule("rmsnorm-scale", &["(Mul ?n ?g)"], scaled)?,
        rule(
            "rmsnorm-onnx",
            &[
                "(internal:SimplifiedLayerNormalization ?x ?g)",
                "(SimplifiedLayerNormalization ?x ?g)",
            ],
            onnx_rms_norm,
        )?,
    ])
}

/// The rules of `skiprmsnorm`.
pub fn skip_rules() -> Result<Vec<Rewrite>, RewriteError> {
    Ok(vec![rule(
        "skiprmsnorm",
        &[
            "(internal:SimplifiedLayerNormalization (Add ?a ?b) ?g)",
            "(SimplifiedLayerNormalization (Add ?a ?b) ?g)",
        ],
        skip,
    )?])
}
