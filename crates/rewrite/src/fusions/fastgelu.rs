//! Tanh-approximated GELU -> com.microsoft `FastGelu`.
//!
//! Matches `0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))` (x^3 as `Pow(x, 3)`,
//! `x * (x * x)` or `(x * x) * x`; the constants as `Mul` or `Div` factors, either order) and
//! ONNX `Gelu(approximate="tanh")` (opset 20). Then `FastGelu(MatMul(..) + bias)` takes the
//! bias as its second input. The erf form is `gelu`; the two never mix: the approximation is
//! read from the constants and the attribute, never assumed from an op name.
//!
//! The result has `x`'s shape when the analysis proves it, or, with `x`'s shape unknown,
//! when every constant of the expression has rank 0 (a rank-0 operand never changes a
//! broadcast shape).

use egg::Id;

use crate::analysis::EGraph;
use crate::error::RewriteError;
use crate::lang::Onnx;
use crate::lang::OpNode;
use crate::rule::{
    Match, Rewrite, add_op, binary, has_matmul, is_channel_vector, is_float, near, ops, rule, same,
    same_shape, scalar, scalar_near, shape,
};

use crate::rule::MS;
const REL: f64 = 1e-5;
/// sqrt(2 / pi).
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const CUBIC: f64 = 0.044715;

/// True when class `c` is a rank-0 constant, or any one-element constant when `x`'s shape
/// is known (the final `same_shape` check then covers the broadcast).
fn shape_neutral(eg: &EGraph, c: Id, x: Id) -> bool {
    shape(eg, x).is_some() || shape(eg, c).is_some_and(|s| s.is_empty())
}

/// Every way class `t` is some class times a scalar constant (`Mul` either order, `Div` by
/// a constant), keeping only factors that are [`shape_neutral`] for `x`.
fn scaled_terms(eg: &EGraph, t: Id, x: Id) -> Vec<(Id, f64)> {
    let mut out = Vec::new();
    for n in &eg[t].nodes {
        let Onnx::Op(d, c) = n else { continue };
        let [a, b] = c.as_slice() else { continue };
        let factor = |k: Id| scalar(eg, k).filter(|_| shape_neutral(eg, k, x));
        if d.is_onnx("Mul") {
            if let Some(k) = factor(*b) {
                out.push((*a, k));
            }
            if let Some(k) = factor(*a) {
                out.push((*b, k));
            }
        } else if d.is_onnx("Div")
            && let Some(k) = factor(*b)
            && k != 0.0
        {
            out.push((*a, 1.0 / k));
        }
    }
    out
}

/// True when class `id` is `x * x`.
fn is_square(eg: &EGraph, id: Id, x: Id) -> bool {
    binary(eg, id, "Mul").any(|(a, b)| same(eg, a, x) && same(eg, b, x))
        || binary(eg, id, "Pow").any(|(a, e)| same(eg, a, x) && scalar(eg, e) == Some(2.0))
}

/// True when class `id` is `x^3`.
fn is_cube(eg: &EGraph, id: Id, x: Id) -> bool {
    binary(eg, id, "Pow")
        .any(|(a, e)| same(eg, a, x) && scalar(eg, e) == Some(3.0) && shape_neutral(eg, e, x))
        || binary(eg, id, "Mul").any(|(a, b)| {
            (same(eg, a, x) && is_square(eg, b, x)) || (same(eg, b, x) && is_square(eg, a, x))
        })
}

/// True when class `t` is `sqrt(2/pi) * (x + 0.044715 * x^3)`.
fn is_tanh_argument(eg: &EGraph, t: Id, x: Id) -> bool {
    scaled_terms(eg, t, x).into_iter().any(|(inner, k)| {
        near(k, SQRT_2_OVER_PI, REL)
            && binary(eg, inner, "Add").any(|(a, b)| {
                let cubic_term = |w: Id| {
                    scaled_terms(eg, w, x)
                        .into_iter()
                        .any(|(cube, k)| near(k, CUBIC, REL) && is_cube(eg, cube, x))
                };
                (same(eg, a, x) && cubic_term(b)) || (same(eg, b, x) && cubic_term(a))
            })
    })
}

fn tanh_gelu(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let (x, t, one, half) = (m.get("?x")?, m.get("?t")?, m.get("?one")?, m.get("?half")?);
    let ok = scalar_near(eg, one, 1.0, REL)
        && scalar_near(eg, half, 0.5, REL)
        && is_tanh_argument(eg, t, x)
        && is_float(eg, x)
        && shape_neutral(eg, one, x)
        && shape_neutral(eg, half, x)
        && (shape(eg, x).is_none() || same_shape(eg, m.root, x));
    ok.then(|| add_op(eg, OpNode::new("FastGelu", MS), vec![x]))
}

fn onnx_tanh_gelu(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let x = m.get("?x")?;
    let tanh = ops(eg, m.root, "", "Gelu")
        .any(|(n, c)| same(eg, c[0], x) && n.attr_str("approximate").as_deref() == Some("tanh"));
    tanh.then(|| add_op(eg, OpNode::new("FastGelu", MS), vec![x]))
}

fn fold_bias(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let (a, b) = (m.get("?a")?, m.get("?b")?);
    (has_matmul(eg, a) && is_channel_vector(eg, b, a))
        .then(|| add_op(eg, OpNode::new("FastGelu", MS), vec![a, b]))
}

/// The rules of this fusion.
pub fn rules() -> Result<Vec<Rewrite>, RewriteError> {
    Ok(vec![
        rule(
            "fastgelu-tanh",
            &[
                "(Mul (Mul ?x (Add (Tanh ?t) ?one)) ?half)",
                "(Mul (Mul (Add (Tanh ?t) ?one) ?x) ?half)",
            ],
            tanh_gelu,
        )?,
        rule("fastgelu-onnx-tanh", &["(Gelu ?x)"], onnx_tanh_gelu)?,
        rule("fastgelu-bias", &["(ms:FastGelu (Add ?a ?b))"], fold_bias)?,
    ])
}
