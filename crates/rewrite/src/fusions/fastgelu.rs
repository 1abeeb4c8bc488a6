//! Tanh-approximated GELU -> com.microsoft `FastGelu`.
//!
//! Matches `0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))` (x^3 as `Pow(x, 3)`,
//! `x * (x * x)` or `(x * x) * x`; the constants as `Mul` or `Div` factors, either order) and
//! ONNX `Gelu(approximate="tanh")` (opset 20). Then `FastGelu(MatMul(..) + bias)` takes the
//! bias as its second input. The erf form is `gelu`; the two never mix: the approximation is
//! read from the constants and the attribute, never assumed from an op name.

use egg::Id;

use crate::analysis::EGraph;
use crate::error::RewriteError;
use crate::lang::OpNode;
use crate::rule::{
    Match, Rewrite, add_op, binary, has_matmul, is_channel_vector, is_float, near, ops, rule, same,
    same_shape, scalar, scalar_near, scaled_terms,
};

const MS: &str = transfuse_ir::MS_DOMAIN;
const REL: f64 = 1e-5;
/// sqrt(2 / pi).
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const CUBIC: f64 = 0.044715;

/// True when class `id` is `x * x`.
fn is_square(eg: &EGraph, id: Id, x: Id) -> bool {
    binary(eg, id, "Mul").any(|(a, b)| same(eg, a, x) && same(eg, b, x))
        || binary(eg, id, "Pow").any(|(a, e)| same(eg, a, x) && scalar(eg, e) == Some(2.0))
}

/// True when class `id` is `x^3`.
fn is_cube(eg: &EGraph, id: Id, x: Id) -> bool {
    binary(eg, id, "Pow").any(|(a, e)| same(eg, a, x) && scalar(eg, e) == Some(3.0))
        || binary(eg, id, "Mul").any(|(a, b)| {
            (same(eg, a, x) && is_square(eg, b, x)) || (same(eg, b, x) && is_square(eg, a, x))
        })
}

/// True when class `t` is `sqrt(2/pi) * (x + 0.044715 * x^3)`.
fn is_tanh_argument(eg: &EGraph, t: Id, x: Id) -> bool {
    scaled_terms(eg, t).into_iter().any(|(inner, k)| {
        near(k, SQRT_2_OVER_PI, REL)
            && binary(eg, inner, "Add").any(|(a, b)| {
                let cubic_term = |w: Id| {
                    scaled_terms(eg, w)
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
        && same_shape(eg, m.root, x);
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
