//! com.microsoft `Gelu(MatMul(..) + bias)` -> `BiasGelu(MatMul(..), bias)`.
//!
//! Only the exact (erf) `Gelu` that the `gelu` fusion produced: BiasGelu computes the erf
//! form, so a tanh GELU must never become one (it becomes `FastGelu` with a bias instead).
//! The bias must be a constant vector of the hidden size, added to a `MatMul` output.

use egg::Id;

use crate::analysis::EGraph;
use crate::error::RewriteError;
use crate::lang::OpNode;
use crate::rule::{Match, Rewrite, add_op, has_matmul, is_channel_vector, rule};

use crate::rule::MS;

fn bias_gelu(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let (a, b) = (m.get("?a")?, m.get("?b")?);
    (has_matmul(eg, a) && is_channel_vector(eg, b, a))
        .then(|| add_op(eg, OpNode::new("BiasGelu", MS), vec![a, b]))
}

/// The rules of this fusion.
pub fn rules() -> Result<Vec<Rewrite>, RewriteError> {
    Ok(vec![rule(
        "biasgelu",
        &["(ms:Gelu (Add ?a ?b))"],
        bias_gelu,
    )?])
}
