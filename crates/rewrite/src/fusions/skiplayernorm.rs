//! `LayerNormalization(a + b)` -> com.microsoft `SkipLayerNormalization(a, b, gamma, beta)`.
//!
//! Post-LN (BERT) and pre-LN (ViT) residuals alike: the fused node always has four outputs,
//! output 0 joins the layer norm's e-class and output 3 (`input_skip_bias_sum`) joins the
//! residual sum's, so extraction reads the sum from the fused node when something else uses
//! it. A linear layer's bias on either operand (`MatMul(..) + bias`) folds into the `bias`
//! input. Conditions: `a`, `b` float, same rank-3 shape with a known hidden size, neither
//! constant; gamma (and beta) constant vectors of the hidden size; the layer norm over the
//! last axis with one output; its epsilon non-negative and finite (ONNX Runtime refuses a
//! negative or NaN one in the fused op).

use egg::Id;

use crate::analysis::EGraph;
use crate::error::RewriteError;
use crate::lang::{AttrVal, F32Bits, Onnx, OpNode};
use crate::rule::{
    Match, Rewrite, absent, add_op, binary, has_matmul, is_channel_vector, is_const, is_float, ops,
    rule, same, same_shape, shape,
};

use crate::rule::MS;

use crate::rule::LN_DEFAULT_EPSILON;

/// True when `eps` may be written into a com.microsoft layer norm (`SkipLayerNormalization`,
/// `EmbedLayerNormalization`): ONNX Runtime refuses to load one whose epsilon fails
/// `epsilon >= 0` (so NaN too), and an infinite one is kept out as well. ONNX
/// `LayerNormalization` itself accepts any epsilon, so a model carrying such a value runs
/// as it is and must stay unfused.
pub(super) fn fusable_epsilon(eps: f32) -> bool {
    eps >= 0.0 && eps.is_finite()
}

fn skip_layer_norm(eps: f32) -> OpNode {
    OpNode::new("SkipLayerNormalization", MS)
        .with_outputs(4)
        .with_attr("epsilon", AttrVal::Float(F32Bits::new(eps)))
}

/// True when `a` and `b` can be SkipLayerNormalization's input and skip.
fn residual_operands(eg: &EGraph, a: Id, b: Id) -> bool {
    is_float(eg, a)
        && same_shape(eg, a, b)
        && shape(eg, a).is_some_and(|s| s.len() == 3 && s[2].as_known().is_some())
        && !is_const(eg, a)
        && !is_const(eg, b)
}

fn fuse(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let (a, b, g) = (m.get("?a")?, m.get("?b")?, m.get("?g")?);
    let beta = m.get("?beta");
    // The layer norm node itself: its attributes and its input (the sum's class).
    let (eps, sum) = ops(eg, m.root, "", "LayerNormalization").find_map(|(n, c)| {
        let axis_last = match n.attr_int("axis").unwrap_or(-1) {
            -1 => true,
            axis => shape(eg, c[0]).is_some_and(|s| axis == s.len() as i64 - 1),
        };
        let same_inputs = c.len() >= 2
            && same(eg, c[1], g)
            && beta.is_none_or(|bt| c.get(2).is_some_and(|&x| same(eg, x, bt)));
        let sum_of = binary(eg, c[0], "Add").any(|(x, y)| same(eg, x, a) && same(eg, y, b));
        (axis_last
            && n.outputs == 1
            && same_inputs
            && sum_of
            && c.len() == if beta.is_some() { 3 } else { 2 })
        .then(|| (n.attr_float("epsilon").unwrap_or(LN_DEFAULT_EPSILON), c[0]))
    })?;
    if !fusable_epsilon(eps) {
        return None;
    }
    if !residual_operands(eg, a, b)
        || !is_channel_vector(eg, g, a)
        || beta.is_some_and(|bt| !is_channel_vector(eg, bt, a))
    {
        return None;
    }
    let beta = match beta {
        Some(bt) => bt,
        None => absent(eg),
    };
    let sln = add_op(eg, skip_layer_norm(eps), vec![a, b, g, beta]);
    let sum_out = eg.add(Onnx::Proj(3, [sln]));
    eg.union(sum_out, sum);
    Some(eg.add(Onnx::Proj(0, [sln])))
}

/// `SkipLayerNormalization(MatMul(..) + bias, skip, ..)` -> bias as the fifth input. The
/// matched class is the fused node's tuple class, so the new node joins it.
fn fold_bias(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let (mm, bias, skip, g, beta) = (
        m.get("?m")?,
        m.get("?bias")?,
        m.get("?skip")?,
        m.get("?g")?,
        m.get("?beta")?,
    );
    let eps = ops(eg, m.root, MS, "SkipLayerNormalization")
        .find_map(|(n, c)| (c.len() == 4).then(|| n.attr_float("epsilon")))?;
    if eps.is_some_and(|e| !fusable_epsilon(e)) {
        return None;
    }
    if !has_matmul(eg, mm) || !is_channel_vector(eg, bias, mm) || !residual_operands(eg, mm, skip) {
        return None;
    }
    Some(add_op(
        eg,
        skip_layer_norm(eps.unwrap_or(1e-12)),
        vec![mm, skip, g, beta, bias],
    ))
}

/// The rules of this fusion.
pub fn rules() -> Result<Vec<Rewrite>, RewriteError> {
    Ok(vec![
        rule(
            "skiplayernorm",
            &[
                "(LayerNormalization (Add ?a ?b) ?g ?beta)",
                "(LayerNormalization (Add ?a ?b) ?g)",
            ],
            fuse,
        )?,
        rule(
            "skiplayernorm-bias",
            &[
                "(ms:SkipLayerNormalization (Add ?m ?bias) ?skip ?g ?beta)",
                "(ms:SkipLayerNormalization ?skip (Add ?m ?bias) ?g ?beta)",
            ],
            fold_bias,
        )?,
    ])
}
