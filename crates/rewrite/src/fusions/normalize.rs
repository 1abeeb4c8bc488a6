//! Directed algebraic normalization, run with every fusion.
//!
//! No global commutativity or associativity (they blow the e-graph up): constants move to
//! the right operand of `Add`/`Mul`, and a constant factor moves out of a nested `Mul`, so the
//! fusion patterns need one spelling for "times a constant". `Identity` is its input.

use crate::analysis::EGraph;
use crate::error::RewriteError;
use crate::lang::OpNode;
use crate::rule::{Match, Rewrite, add_op, is_const, is_float, rule};
use egg::Id;

fn commute_constant_right(op: &'static str) -> impl Fn(&mut EGraph, &Match<'_>) -> Option<Id> {
    move |eg, m| {
        let (c, x) = (m.get("?c")?, m.get("?x")?);
        if !is_const(eg, c) || is_const(eg, x) {
            return None;
        }
        Some(add_op(eg, OpNode::new(op, ""), vec![x, c]))
    }
}

/// `(a*c)*b` or `a*(b*c)` with constant `c` -> `(a*b)*c`, for float tensors.
fn constant_factor_outward(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let (a, b, c) = (m.get("?a")?, m.get("?b")?, m.get("?c")?);
    if !is_const(eg, c) || is_const(eg, a) || is_const(eg, b) || !is_float(eg, m.root) {
        return None;
    }
    let ab = add_op(eg, OpNode::new("Mul", ""), vec![a, b]);
    Some(add_op(eg, OpNode::new("Mul", ""), vec![ab, c]))
}

/// The normalization rules.
pub fn rules() -> Result<Vec<Rewrite>, RewriteError> {
    Ok(vec![
        rule(
            "add-constant-right",
            &["(Add ?c ?x)"],
            commute_constant_right("Add"),
        )?,
        rule(
            "mul-constant-right",
            &["(Mul ?c ?x)"],
            commute_constant_right("Mul"),
        )?,
        rule(
            "mul-constant-outward",
            &["(Mul (Mul ?a ?c) ?b)", "(Mul ?a (Mul ?b ?c))"],
            constant_factor_outward,
        )?,
        rule("identity-is-input", &["(Identity ?x)"], |_, m| m.get("?x"))?,
    ])
}
