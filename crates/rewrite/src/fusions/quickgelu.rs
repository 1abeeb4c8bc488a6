//! `x * Sigmoid(alpha * x)` -> com.microsoft `QuickGelu(alpha)`.
//!
//! Either operand order; `alpha * x` as `Mul` (either order) or `Div` by 1/alpha, or `x` itself
//! (alpha = 1, SiLU). `alpha` is read from the scalar constant and written to the attribute.

use egg::Id;

use crate::analysis::EGraph;
use crate::error::RewriteError;
use crate::lang::{AttrVal, F32Bits, OpNode};
use crate::rule::{Match, Rewrite, add_op, is_float, rule, same, same_shape, scale_of};

use crate::rule::MS;

fn quick_gelu(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let (x, t) = (m.get("?x")?, m.get("?t")?);
    let alpha = if same(eg, t, x) {
        1.0
    } else {
        scale_of(eg, t, x)?
    };
    if !alpha.is_finite() || !is_float(eg, x) || !same_shape(eg, m.root, x) {
        return None;
    }
    let node =
        OpNode::new("QuickGelu", MS).with_attr("alpha", AttrVal::Float(F32Bits::new(alpha as f32)));
    Some(add_op(eg, node, vec![x]))
}

/// The rules of this fusion.
pub fn rules() -> Result<Vec<Rewrite>, RewriteError> {
    Ok(vec![rule(
        "quickgelu",
        &["(Mul ?x (Sigmoid ?t))", "(Mul (Sigmoid ?t) ?x)"],
        quick_gelu,
    )?])
}
