//! Exact (erf) GELU -> com.microsoft `Gelu`.
//!
//! Matches `x * (1 + erf(x / sqrt2)) * 0.5` in the forms exporters emit: the 0.5 anywhere in
//! the product (normalization moves constant factors outward), `Div` by sqrt2 or `Mul` by
//! 1/sqrt2, either operand order. ONNX `Gelu` (opset 20) without approximation maps too.

use egg::Id;

use crate::analysis::EGraph;
use crate::error::RewriteError;
use crate::lang::OpNode;
use crate::rule::{
    Match, Rewrite, add_op, is_float, near, ops, rule, same, same_shape, scalar_near, scale_of,
};

use crate::rule::MS;

/// Tolerance on the exporters' f32 constants.
const REL: f64 = 1e-5;

fn erf_gelu(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let (x, t, one, half) = (m.get("?x")?, m.get("?t")?, m.get("?one")?, m.get("?half")?);
    let ok = scalar_near(eg, one, 1.0, REL)
        && scalar_near(eg, half, 0.5, REL)
        && scale_of(eg, t, x).is_some_and(|k| near(k, std::f64::consts::FRAC_1_SQRT_2, REL))
        && is_float(eg, x)
        && same_shape(eg, m.root, x);
    ok.then(|| add_op(eg, OpNode::new("Gelu", MS), vec![x]))
}

fn onnx_gelu(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let x = m.get("?x")?;
    let exact = ops(eg, m.root, "", "Gelu")
        .any(|(n, c)| same(eg, c[0], x) && n.attr_str("approximate").is_none_or(|a| a == "none"));
    exact.then(|| add_op(eg, OpNode::new("Gelu", MS), vec![x]))
}

/// The rules of this fusion.
pub fn rules() -> Result<Vec<Rewrite>, RewriteError> {
    Ok(vec![
        rule(
            "gelu-erf",
            &[
                "(Mul (Mul ?x (Add (Erf ?t) ?one)) ?half)",
                "(Mul (Mul (Add (Erf ?t) ?one) ?x) ?half)",
            ],
            erf_gelu,
        )?,
        rule("gelu-onnx", &["(Gelu ?x)"], onnx_gelu)?,
    ])
}
