//! Decomposed layer normalization -> ONNX `LayerNormalization` (last axis).
//!
//! The core `(x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps)` (square as `Pow(d, 2)` or
//! `Mul(d, d)`; division as `Div`, or `Mul` by `Reciprocal`) becomes `LayerNormalization(x,
//! ones)`; then `* gamma` and `+ beta` fold into its scale and bias. The TensorFlow form
//! `x * s + (beta - mean * s)` with `s = gamma / sqrt(var + eps)` maps directly. Every mean
//! must reduce exactly the last axis with `keepdims`; `eps` must be a scalar constant.
//!
//! Shapes may be partly known: the fused kernel needs only the normalized axis to be the
//! last one (axes `[-1]`, or `[rank - 1]` with the rank known) and the scale's length. With
//! the last dim known the core becomes `LayerNormalization(x, ones)`; without it,
//! `core * gamma` becomes `LayerNormalization(x, gamma)` directly, its length read from the
//! initializer (`norm_conditions::channel_len` says why that is enough).
//! Models exported at opset 17+ already carry `LayerNormalization`; those nodes stay.

use egg::Id;

use super::norm_conditions::{channel_len, epsilon_of, mean_over_last_axis};
use crate::analysis::EGraph;
use crate::error::RewriteError;
use crate::lang::{AttrVal, F32Bits, OpNode};
use crate::rule::{
    Match, Rewrite, add_f32, add_op, binary, data, is_const, is_float, last_dim, ops, rule, same,
    same_shape, scalar,
};

/// `x` when class `m` holds `ReduceMean(x)` over the last axis with keepdims.
fn mean_of_last_axis(eg: &EGraph, m: Id, x: Id) -> bool {
    ops(eg, m, "", "ReduceMean").any(|(n, c)| same(eg, c[0], x) && mean_over_last_axis(eg, n, c))
}

/// `x` when class `d` holds `Sub(x, mean(x))`.
fn centered_input(eg: &EGraph, d: Id) -> Option<Id> {
    binary(eg, d, "Sub")
        .find(|&(x, m)| mean_of_last_axis(eg, m, x))
        .map(|(x, _)| x)
}

/// True when class `var` holds `mean(d^2)` over the last axis.
fn variance_of(eg: &EGraph, var: Id, d: Id) -> bool {
    ops(eg, var, "", "ReduceMean").any(|(n, c)| {
        mean_over_last_axis(eg, n, c) && {
            let sq = c[0];
            binary(eg, sq, "Pow").any(|(a, e)| same(eg, a, d) && scalar(eg, e) == Some(2.0))
                || binary(eg, sq, "Mul").any(|(a, b)| same(eg, a, d) && same(eg, b, d))
        }
    })
}

/// Epsilon of a variance `+ eps` term: a scalar constant, non-negative and finite also as
/// f32 (a negative or NaN one makes the decomposed form NaN where the fused op would not be,
/// and the fused layer norms of ONNX Runtime refuse it).
fn epsilon(eg: &EGraph, eps: Id) -> Option<f32> {
    scalar(eg, eps)
        .map(|e| e as f32)
        .filter(|e| *e >= 0.0 && e.is_finite())
}

fn layer_norm(eps: f32) -> OpNode {
    OpNode::new("LayerNormalization", "")
        .with_attr("axis", AttrVal::Int(-1))
        .with_attr("epsilon", AttrVal::Float(F32Bits::new(eps)))
}

/// `(x, eps)` when `d / sqrt(var + eps)` is a layer norm's core: `d = x - mean(x)`,
/// `var = mean(d^2)`, `x` f32. The result has `x`'s shape: `d` has it (the mean keeps dims),
/// `var` has it with a last dim of 1, and `epsilon_of` checks `eps` cannot raise the rank.
fn core_parts(eg: &EGraph, d: Id, var: Id, eps: Id) -> Option<(Id, f32)> {
    let x = centered_input(eg, d)?;
    let eps = epsilon_of(eg, eps, x)?;
    (variance_of(eg, var, d) && data(eg, x).dtype == Some(transfuse_ir::DataType::Float))
        .then_some((x, eps))
}

/// `(x, eps)` when class `n` holds a layer norm's core in one of its spellings.
fn core_in(eg: &EGraph, n: Id) -> Option<(Id, f32)> {
    // `eps` of `sqrt(var + eps)` in class `s`, with `d`.
    let under_sqrt = |s: Id, d: Id| {
        ops(eg, s, "", "Sqrt").find_map(|(_, c)| {
            binary(eg, c[0], "Add").find_map(|(var, eps)| core_parts(eg, d, var, eps))
        })
    };
    let reciprocal =
        |r: Id, d: Id| ops(eg, r, "", "Reciprocal").find_map(|(_, c)| under_sqrt(c[0], d));
    binary(eg, n, "Div")
        .find_map(|(d, s)| under_sqrt(s, d))
        .or_else(|| {
            binary(eg, n, "Mul").find_map(|(a, b)| reciprocal(b, a).or_else(|| reciprocal(a, b)))
        })
}

/// The normalized core: `d / sqrt(var + eps)` -> `LayerNormalization(x, ones)`, when `x`'s
/// last dim is known.
fn core(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let (d, var, eps) = (m.get("?d")?, m.get("?var")?, m.get("?eps")?);
    let (x, eps) = core_parts(eg, d, var, eps)?;
    let h = last_dim(eg, x)?.as_known()?;
    let len = usize::try_from(h).ok()?;
    let ones = add_f32(eg, vec![h], &vec![1.0; len]);
    Some(add_op(eg, layer_norm(eps), vec![x, ones]))
}

/// `core * gamma` -> `LayerNormalization(x, gamma)`: needs only `gamma`'s length, so it
/// also fires when `x`'s last dim (or its whole shape) is unknown.
fn scaled_core(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let (n, g) = (m.get("?n")?, m.get("?g")?);
    if !is_const(eg, g) {
        return None;
    }
    let (x, eps) = core_in(eg, n)?;
    channel_len(eg, g, x)?;
    Some(add_op(eg, layer_norm(eps), vec![x, g]))
}

/// A `LayerNormalization(x, scale)` (two inputs, last axis, one output) in class `n`:
/// `(attributes, x, scale)`.
fn plain_layer_norm(eg: &EGraph, n: Id) -> Vec<(OpNode, Id, Id)> {
    ops(eg, n, "", "LayerNormalization")
        .filter(|(d, c)| c.len() == 2 && d.outputs == 1 && d.attr_int("axis").unwrap_or(-1) == -1)
        .map(|(d, c)| (d.clone(), c[0], c[1]))
        .collect()
}

/// `LayerNormalization(x, ones) * gamma` -> `LayerNormalization(x, gamma)`.
fn fold_scale(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let (n, g) = (m.get("?n")?, m.get("?g")?);
    for (node, x, scale) in plain_layer_norm(eg, n) {
        let unit = data(eg, scale).uniform.as_ref().and_then(|u| u.as_f64()) == Some(1.0);
        if unit && channel_len(eg, g, x).is_some() {
            return Some(add_op(eg, node, vec![x, g]));
        }
    }
    None
}

/// `LayerNormalization(x, gamma) + beta` -> `LayerNormalization(x, gamma, beta)`.
fn fold_bias(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let (n, b) = (m.get("?n")?, m.get("?b")?);
    for (node, x, scale) in plain_layer_norm(eg, n) {
        if channel_len(eg, b, x).is_some() {
            return Some(add_op(eg, node, vec![x, scale, b]));
        }
    }
    None
}

/// TensorFlow's form: `x * s + (beta - mean * s)` with `s = 1/sqrt(var + eps) * gamma`.
fn tensorflow(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let (x, s, beta, ms) = (m.get("?x")?, m.get("?s")?, m.get("?beta")?, m.get("?ms")?);
    // ms = mean * s (either order), mean = ReduceMean(x)
    let mean = binary(eg, ms, "Mul").find_map(|(a, b)| {
        if same(eg, b, s) && mean_of_last_axis(eg, a, x) {
            Some(a)
        } else if same(eg, a, s) && mean_of_last_axis(eg, b, x) {
            Some(b)
        } else {
            None
        }
    })?;
    // s = rstd * gamma, rstd = Reciprocal(Sqrt(var + eps)), var = mean((x - mean)^2)
    let found = binary(eg, s, "Mul").find_map(|(rstd, gamma)| {
        ops(eg, rstd, "", "Reciprocal").find_map(|(_, r)| {
            ops(eg, r[0], "", "Sqrt").find_map(|(_, q)| {
                binary(eg, q[0], "Add").find_map(|(var, eps)| {
                    let eps = epsilon(eg, eps)?;
                    let centered = ops(eg, var, "", "ReduceMean").find_map(|(_, v)| {
                        ops(eg, v[0], "", "Mul")
                            .chain(ops(eg, v[0], "", "Pow"))
                            .find_map(|(_, p)| {
                                binary(eg, p[0], "Sub")
                                    .any(|(a, b)| same(eg, a, x) && same(eg, b, mean))
                                    .then_some(p[0])
                            })
                    })?;
                    variance_of(eg, var, centered).then_some((gamma, eps))
                })
            })
        })
    });
    let (gamma, eps) = found?;
    if !is_float(eg, x)
        || channel_len(eg, gamma, x).is_none()
        || channel_len(eg, beta, x).is_none()
        || !same_shape(eg, m.root, x)
    {
        return None;
    }
    Some(add_op(eg, layer_norm(eps), vec![x, gamma, beta]))
}

/// The rules of this fusion.
pub fn rules() -> Result<Vec<Rewrite>, RewriteError> {
    Ok(vec![
        rule(
            "layernorm-core",
            &[
                "(Div ?d (Sqrt (Add ?var ?eps)))",
                "(Mul ?d (Reciprocal (Sqrt (Add ?var ?eps))))",
                "(Mul (Reciprocal (Sqrt (Add ?var ?eps))) ?d)",
            ],
            core,
        )?,
        rule("layernorm-scale", &["(Mul ?n ?g)"], fold_scale)?,
        rule("layernorm-core-scaled", &["(Mul ?n ?g)"], scaled_core)?,
        rule("layernorm-bias", &["(Add ?n ?b)"], fold_bias)?,
        rule(
            "layernorm-tensorflow",
            &[
                "(Add (Mul ?x ?s) (Sub ?beta ?ms))",
                "(Add (Mul ?s ?x) (Sub ?beta ?ms))",
                "(Add (Sub ?beta ?ms) (Mul ?x ?s))",
                "(Add (Sub ?beta ?ms) (Mul ?s ?x))",
            ],
            tensorflow,
        )?,
    ])
}
