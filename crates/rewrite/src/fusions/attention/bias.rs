//! Scores with two additive inputs: `Softmax((Scores + b1) + b2)`, as T5 spells a relative
//! position bias plus a padding mask (`b1` is the position bias, shared by every layer; `b2`
//! the mask). Lifted to `Probs(Scores, b1 + b2)`: the fused op takes one `attention_bias`.
//!
//! The sum `b1 + b2` is one e-node over the same two classes in every layer, so a bias
//! shared by all layers stays one e-class and is computed once in the output. Reassociating
//! `(s + b1) + b2` as `s + (b1 + b2)` changes rounding only (one f32 ulp of the larger term);
//! with a mask fill of f32's lowest value or `-inf` both give that fill, so masked keys stay
//! masked. Whether the combined bias can be fed to the fused op (float, broadcasting to
//! `[B|1, N|1, S, T]`) is decided by the mapping (`mapping.rs`, `attention_bias`).

use egg::Id;
use transfuse_ir::DataType;

use super::canonical::{probs, scores_in};
use crate::analysis::EGraph;
use crate::error::RewriteError;
use crate::lang::OpNode;
use crate::rule::{Match, Rewrite, add_op, dtype, ops, rule, same_shape};

/// `(l, r)` of every `Add(l, r)` in class `id`, both orders.
fn add_terms(eg: &EGraph, id: Id) -> Vec<(Id, Id)> {
    ops(eg, id, "", "Add")
        .filter_map(|(_, c)| match c {
            [l, r] => Some([(*l, *r), (*r, *l)]),
            _ => None,
        })
        .flatten()
        .collect()
}

/// `Softmax(x, axis = last)`, `x` rank-4 float `(s + b1) + b2` with `s` a `Scores` class,
/// both sums keeping the scores' shape and both biases float -> `Probs[0](s, b1 + b2)`.
fn lift_two_biases(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let x = m.get("?x")?;
    if !super::lift::float_softmax_over_last_axis(eg, m.root, x) {
        return None;
    }
    let float = |id: Id| dtype(eg, id) == Some(DataType::Float);
    let found = add_terms(eg, x).into_iter().find_map(|(inner, b2)| {
        if !float(b2) || !same_shape(eg, inner, x) {
            return None;
        }
        add_terms(eg, inner).into_iter().find_map(|(s, b1)| {
            (!scores_in(eg, s).is_empty() && float(b1) && same_shape(eg, s, x))
                .then_some((s, b1, b2))
        })
    });
    let (s, b1, b2) = found?;
    let bias = add_op(eg, OpNode::new("Add", ""), vec![b1, b2]);
    Some(add_op(eg, probs(false), vec![s, bias]))
}

/// The rule.
pub(super) fn rules() -> Result<Vec<Rewrite>, RewriteError> {
    Ok(vec![rule(
        "attention-softmax-two-biases",
        &["(Softmax ?x)"],
        lift_two_biases,
    )?])
}
