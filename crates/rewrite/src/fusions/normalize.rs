//! Directed algebraic normalization, run with every fusion.
//!
//! No global commutativity or associativity (they blow the e-graph up): constants move to
//! the right operand of `Add`/`Mul`, and a constant factor moves out of a nested `Mul`, so the
//! fusion patterns need one spelling for "times a constant". Two scalar factors in a row
//! fold into one new constant (`(a * c1) * c2` -> `a * (c1 * c2)`, the product rounded once
//! in f32: it differs from the two roundings of the original by at most an ulp or two of
//! the result, well inside the parity tolerance); `a + Neg(b)` is `a - b`; `1 / y` is
//! `Reciprocal(y)` (both correctly rounded, so bit-exact); dividing by a power of two is
//! multiplying by its reciprocal (exact); `Pow(v, -0.5)` is `Reciprocal(Sqrt(v))` (within an
//! ulp; the extractor keeps the cheaper `Pow` wherever no fusion consumes it); `Identity`, a
//! `Cast` to the type its input already has and a `Reshape` to the shape its input already
//! has (both shapes proven equal by the analysis) are their input, and so is a `Concat` of
//! one input.

use crate::analysis::EGraph;
use crate::error::RewriteError;
use crate::lang::OpNode;
use crate::rule::{
    Match, Rewrite, add_f32, add_op, dtype, is_const, is_float, rule, same_shape, scalar, shape,
};
use egg::Id;
use transfuse_ir::DataType;

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

/// `(a * c1) * c2` with one-element f32 constants -> `a * c` with `c = c1 * c2` rounded once.
fn fold_scalar_factors(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let (a, c1, c2) = (m.get("?a")?, m.get("?c1")?, m.get("?c2")?);
    let f32_scalar = |c: Id| {
        (is_const(eg, c) && dtype(eg, c) == Some(DataType::Float))
            .then(|| scalar(eg, c))
            .flatten()
    };
    let (k1, k2) = (f32_scalar(c1)?, f32_scalar(c2)?);
    if is_const(eg, a) || dtype(eg, a) != Some(DataType::Float) {
        return None;
    }
    // The folded constant keeps the higher rank of the two, all dims 1, so the broadcast
    // shape of the product is unchanged.
    let rank = shape(eg, c1)?.len().max(shape(eg, c2)?.len());
    let k = (k1 as f32) * (k2 as f32);
    if !k.is_finite() {
        return None;
    }
    let c = add_f32(eg, vec![1; rank], &[k]);
    Some(add_op(eg, OpNode::new("Mul", ""), vec![a, c]))
}

/// `1 / y` -> `Reciprocal(y)`, when the one-element constant 1 does not widen `y`'s shape
/// (its rank is at most `y`'s and every dim is 1) and `y` is a float tensor.
fn div_one_is_reciprocal(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let (one, y) = (m.get("?one")?, m.get("?y")?);
    if !is_const(eg, one) || scalar(eg, one) != Some(1.0) || !is_float(eg, y) {
        return None;
    }
    let one_rank = shape(eg, one)?.len();
    if one_rank > shape(eg, y)?.len() || dtype(eg, one) != dtype(eg, y) {
        return None;
    }
    Some(add_op(eg, OpNode::new("Reciprocal", ""), vec![y]))
}

/// `x / c` -> `x * (1/c)` for a one-element f32 constant `c` that is a power of two (its
/// reciprocal is exact, so both compute the same bits).
fn div_power_of_two_is_mul(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let (x, c) = (m.get("?x")?, m.get("?c")?);
    if !is_const(eg, c) || is_const(eg, x) || dtype(eg, c) != Some(DataType::Float) {
        return None;
    }
    if dtype(eg, x) != Some(DataType::Float) || shape(eg, c)?.len() > shape(eg, x)?.len() {
        return None;
    }
    let k = scalar(eg, c)? as f32;
    // A normal f32 with an all-zero mantissa field is ±2^e; its reciprocal 2^-e is exact
    // when that is normal too.
    let power_of_two = |v: f32| v.is_normal() && v.to_bits() & 0x007f_ffff == 0;
    if !power_of_two(k) || !power_of_two(1.0 / k) {
        return None;
    }
    let rank = shape(eg, c)?.len();
    let r = add_f32(eg, vec![1; rank], &[1.0 / k]);
    Some(add_op(eg, OpNode::new("Mul", ""), vec![x, r]))
}

/// `Pow(v, -0.5)` -> `Reciprocal(Sqrt(v))`, for a float `v` and a one-element exponent that
/// does not widen `v`'s shape.
fn pow_minus_half_is_rsqrt(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let (v, p) = (m.get("?v")?, m.get("?p")?);
    if !is_const(eg, p) || scalar(eg, p) != Some(-0.5) || !is_float(eg, v) {
        return None;
    }
    if shape(eg, p)?.len() > shape(eg, v)?.len() {
        return None;
    }
    let root = add_op(eg, OpNode::new("Sqrt", ""), vec![v]);
    Some(add_op(eg, OpNode::new("Reciprocal", ""), vec![root]))
}

/// `Cast(x, to)` where `x` already has type `to` -> `x`.
fn noop_cast(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let x = m.get("?x")?;
    let to = crate::rule::ops(eg, m.root, "", "Cast").find_map(|(n, c)| {
        (c.len() == 1 && crate::rule::same(eg, c[0], x)).then(|| n.attr_int("to"))?
    })?;
    let to = DataType::from_code(i32::try_from(to).ok()?);
    (dtype(eg, x) == Some(to)).then_some(x)
}

/// `Reshape(x, s)` whose result has `x`'s proven shape -> `x`.
fn noop_reshape(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let x = m.get("?x")?;
    same_shape(eg, m.root, x).then_some(x)
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
        rule(
            "mul-fold-scalar-factors",
            &["(Mul (Mul ?a ?c1) ?c2)"],
            fold_scalar_factors,
        )?,
        rule(
            "add-neg-is-sub",
            &["(Add ?a (Neg ?b))", "(Add (Neg ?b) ?a)"],
            |eg, m| {
                let (a, b) = (m.get("?a")?, m.get("?b")?);
                Some(add_op(eg, OpNode::new("Sub", ""), vec![a, b]))
            },
        )?,
        rule(
            "div-one-is-reciprocal",
            &["(Div ?one ?y)"],
            div_one_is_reciprocal,
        )?,
        rule(
            "div-power-of-two-is-mul",
            &["(Div ?x ?c)"],
            div_power_of_two_is_mul,
        )?,
        rule(
            "pow-minus-half-is-rsqrt",
            &["(Pow ?v ?p)"],
            pow_minus_half_is_rsqrt,
        )?,
        rule("identity-is-input", &["(Identity ?x)"], |_, m| m.get("?x"))?,
        rule("noop-cast-is-input", &["(Cast ?x)"], noop_cast)?,
        rule("noop-reshape-is-input", &["(Reshape ?x ?s)"], noop_reshape)?,
        // A pattern's arity is exact: this matches `Concat` of one input only (XLM's key
        // cache joins the new keys to nothing).
        rule("single-concat-is-input", &["(Concat ?x)"], |_, m| {
            m.get("?x")
        })?,
    ])
}
